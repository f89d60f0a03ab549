using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using LinuxKit.Testing.KubeVirt;

namespace LinuxKit.Testing.Tests.Hypervisors.KubeVirt;

/// <summary>
/// The bridge's check of the API server's certificate, with certificates made here: a cluster CA
/// and servers it signed for other names, and a CA nobody configured.
/// </summary>
public sealed class ServerCertificateCheckTests : IDisposable
{
    private readonly X509Certificate2 _clusterCa = Authority("cluster-ca");
    private readonly X509Certificate2 _otherCa = Authority("other-ca");

    public void Dispose()
    {
        _clusterCa.Dispose();
        _otherCa.Dispose();
    }

    [Fact]
    public void A_server_certificate_from_the_cluster_ca_for_the_servers_name_is_accepted()
    {
        using var server = Leaf(_clusterCa, "api.cluster.test");
        Assert.True(Check("api.cluster.test").Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));
    }

    [Fact]
    public void A_certificate_the_cluster_ca_signed_for_another_name_is_refused_though_the_library_would_take_it()
    {
        using var other = Leaf(_clusterCa, "some-other-service.cluster.test");

        Assert.False(Check("api.cluster.test").Validate(this, other, null, SslPolicyErrors.RemoteCertificateChainErrors | SslPolicyErrors.RemoteCertificateNameMismatch));
        // KubernetesClient's own callback: a chain error present, the name never looked at.
        using var chain = new X509Chain();
        Assert.True(k8s.Kubernetes.CertificateValidationCallBack(this, [_clusterCa], other, chain, SslPolicyErrors.RemoteCertificateChainErrors | SslPolicyErrors.RemoteCertificateNameMismatch));
    }

    [Fact]
    public void The_kubeconfigs_tls_server_name_is_the_name_checked_when_it_is_given()
    {
        using var server = Leaf(_clusterCa, "kubernetes.default.svc");
        Assert.True(Check("kubernetes.default.svc").Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors | SslPolicyErrors.RemoteCertificateNameMismatch));
    }

    [Fact]
    public void An_address_given_as_an_ip_matches_the_certificates_ip_san()
    {
        using var server = Leaf(_clusterCa, "10.0.0.1");
        Assert.True(Check("10.0.0.1").Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.False(Check("10.0.0.2").Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));
    }

    [Fact]
    public void A_certificate_for_the_right_name_from_another_ca_is_refused()
    {
        using var impostor = Leaf(_otherCa, "api.cluster.test");
        Assert.False(Check("api.cluster.test").Validate(this, impostor, null, SslPolicyErrors.RemoteCertificateChainErrors));
    }

    [Fact]
    public void Without_a_cluster_ca_the_systems_verdict_on_the_chain_stands_and_the_name_is_still_checked()
    {
        using var server = Leaf(_otherCa, "api.cluster.test");
        var check = new ServerCertificateCheck(null, "api.cluster.test");
        Assert.False(check.Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.True(check.Validate(this, server, null, SslPolicyErrors.None));
        Assert.False(new ServerCertificateCheck(null, "elsewhere.test").Validate(this, server, null, SslPolicyErrors.None));
        Assert.False(check.Validate(this, null, null, SslPolicyErrors.RemoteCertificateNotAvailable));
    }

    private ServerCertificateCheck Check(string serverName) => new([_clusterCa], serverName);

    private static X509Certificate2 Authority(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }

    private static X509Certificate2 Leaf(X509Certificate2 authority, string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        if (System.Net.IPAddress.TryParse(name, out var address)) names.AddIpAddress(address);
        else names.AddDnsName(name);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(authority, true, false));
        var serial = RandomNumberGenerator.GetBytes(8);
        using var signer = authority.GetECDsaPrivateKey()!;
        using var issued = request.Create(authority.SubjectName, X509SignatureGenerator.CreateForECDsa(signer), DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(12), serial);
        return X509CertificateLoader.LoadCertificate(issued.RawData);
    }
}
