using DotNet.Testcontainers.Images;

namespace LinuxKit.Testing.Testcontainers;

/// <summary>
/// A LinuxKit image file seen through Testcontainers' image interface. A file has no registry,
/// tag or digest: those are empty, and the path is the repository and the full name.
/// </summary>
internal sealed class LinuxKitImageReference(string path) : IImage
{
    public string Repository => path;
    public string Registry => "";
    public string Tag => "";
    public string Digest => "";
    public string Platform => "linux/amd64";
    public string FullName => path;
    public string GetHostname() => "";
    public bool MatchLatestOrNightly() => false;
    public bool MatchVersion(Predicate<string> predicate) => false;
    public bool MatchVersion(Predicate<Version> predicate) => false;
}
