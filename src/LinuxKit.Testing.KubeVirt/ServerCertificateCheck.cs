using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace LinuxKit.Testing.KubeVirt;

/// <summary>
/// Whether the API server's certificate is one to send credentials to, as kubectl decides: a
/// chain to the kubeconfig's certificate authority (only to it, when one is given; to the
/// system's roots otherwise), and a name that matches the server, or the kubeconfig's
/// <c>tls-server-name</c> when it gives one. KubernetesClient's own check accepts any
/// certificate the cluster CA signed whatever name it carries, so a bearer token would go to
/// whoever holds one; the bridge uses this check for its calls and WebSockets alike.
/// </summary>
internal sealed class ServerCertificateCheck(X509Certificate2Collection? authorities, string serverName)
{
    public X509Certificate2Collection? Authorities { get; } = authorities;

    /// <summary>The name the certificate must carry.</summary>
    public string ServerName { get; } = serverName;

    /// <summary>A <see cref="RemoteCertificateValidationCallback"/>.</summary>
    public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0) return false;
        using var leaf = new X509Certificate2(certificate);
        // Names from the subject alternative names only, as Go's TLS does since 1.15.
        if (!leaf.MatchesHostname(ServerName, allowWildcards: true, allowCommonName: false)) return false;
        if (Authorities is not { Count: > 0 }) return (errors & SslPolicyErrors.RemoteCertificateChainErrors) == 0;

        using var own = new X509Chain();
        own.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        own.ChainPolicy.CustomTrustStore.AddRange(Authorities);
        own.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        // Intermediates the server sent along.
        if (chain is not null)
            foreach (var element in chain.ChainElements)
                if (!element.Certificate.RawDataMemory.Span.SequenceEqual(leaf.RawDataMemory.Span)) own.ChainPolicy.ExtraStore.Add(element.Certificate);
        return own.Build(leaf);
    }
}
