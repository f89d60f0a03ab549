namespace LinuxKit.Testing;

/// <summary>A volume written flat, as the attribute and the tool take it: "HOST_FOLDER:GUEST_PATH".</summary>
internal static class VolumeMapping
{
    /// <summary>The host folder and the guest path; the guest path is absolute, so the last ':' separates it even from a host path holding one.</summary>
    /// <param name="text">The volume as written.</param>
    /// <param name="source">Where it was written, for the error (e.g. "LinuxKitImage Volumes").</param>
    /// <exception cref="LinuxKitException">It is not HOST_FOLDER:GUEST_PATH.</exception>
    public static KeyValuePair<string, string> Parse(string text, string source)
    {
        var separator = text.LastIndexOf(':');
        if (separator <= 0 || separator == text.Length - 1)
            throw new LinuxKitException($"{source} has '{text}': write HOST_FOLDER:GUEST_PATH, e.g. \"testdata:/mnt/testdata\".");
        return new(text[..separator], text[(separator + 1)..]);
    }
}
