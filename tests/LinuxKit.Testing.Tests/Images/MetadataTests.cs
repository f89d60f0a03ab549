using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using LinuxKit.Testing.Images;

namespace LinuxKit.Testing.Tests.Images;

public class MetadataTests
{
    private static readonly DateTime Timestamp = new(2026, 11, 28, 12, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void Metadata_json_follows_linuxkit_entries_convention()
    {
        var json = LinuxKitMetadata.Build("ecdsa-sha2-nistp256 AAAA key", [("vol0", "/data"), ("vol1", "/srv/x")]);
        using var doc = JsonDocument.Parse(json);
        var key = doc.RootElement.GetProperty("ssh").GetProperty("entries").GetProperty("authorized_keys");
        Assert.Equal("0600", key.GetProperty("perm").GetString());
        Assert.Equal("ecdsa-sha2-nistp256 AAAA key\n", key.GetProperty("content").GetString());
        var mounts = doc.RootElement.GetProperty("mounts").GetProperty("entries").GetProperty("virtfs");
        Assert.Equal("vol0 /data\nvol1 /srv/x\n", mounts.GetProperty("content").GetString());
    }

    [Fact]
    public void Metadata_without_volumes_has_no_mounts_entry()
    {
        using var doc = JsonDocument.Parse(LinuxKitMetadata.Build("k", []));
        Assert.False(doc.RootElement.TryGetProperty("mounts", out _));
    }

    [Fact]
    public void Metadata_iso_is_detected_as_iso_and_sized_in_whole_sectors()
    {
        var iso = MetadataIso.Build([("config", "{}"u8.ToArray())], Timestamp, "cidata");
        Assert.Equal(ImageFormat.Iso, ImageSignature.Detect(iso));
        Assert.Equal(0, iso.Length % 2048);
        Assert.Equal(iso.Length / 2048, BinaryPrimitives.ReadInt32LittleEndian(iso.AsSpan(0x8000 + 80)));
    }

    [Fact]
    public void Metadata_iso_root_lists_its_files_sorted_each_with_its_content()
    {
        var big = Encoding.UTF8.GetBytes(new string('x', 5000) + "end");
        var iso = MetadataIso.Build([("user-data", "u"u8.ToArray()), ("config", big), ("meta-data", "m"u8.ToArray())], Timestamp, "cidata");

        Assert.Equal("cidata", Encoding.ASCII.GetString(iso, 0x8000 + 40, 32).TrimEnd());
        var rootExtent = BinaryPrimitives.ReadInt32LittleEndian(iso.AsSpan(0x8000 + 156 + 2));
        var dir = iso.AsSpan(rootExtent * 2048, 2048);
        var offset = dir[0] + dir[dir[0]]; // skip "." and ".."
        var found = new List<(string, byte[])>();
        while (dir[offset] != 0)
        {
            var record = dir[offset..];
            var extent = BinaryPrimitives.ReadInt32LittleEndian(record[2..]);
            var length = BinaryPrimitives.ReadInt32LittleEndian(record[10..]);
            found.Add((Encoding.ASCII.GetString(record.Slice(33, record[32])), iso.AsSpan(extent * 2048, length).ToArray()));
            offset += record[0];
        }
        Assert.Equal(["CONFIG.;1", "META-DATA.;1", "USER-DATA.;1"], found.Select(f => f.Item1));
        Assert.Equal(big, found[0].Item2);
        Assert.Equal("m"u8.ToArray(), found[1].Item2);
        Assert.Equal("u"u8.ToArray(), found[2].Item2);
    }

    [Fact]
    public void The_metadata_disk_gives_linuxkit_its_json_as_config_and_user_data_and_cloud_init_the_key_in_meta_data()
    {
        var json = LinuxKitMetadata.Build("ssh-ed25519 AAAA it's mine", []);

        var files = ReadBack(MetadataDisk.Build(json, "ssh-ed25519 AAAA it's mine\n", "linuxkit-testing-abc", Timestamp));

        Assert.Equal(["config", "meta-data", "user-data"], files.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(json, files["config"]);
        Assert.Equal(json, files["user-data"]);
        // YAML single quotes: the key's own quote is doubled.
        Assert.Equal("instance-id: 'linuxkit-testing-abc'\npublic-keys:\n  - 'ssh-ed25519 AAAA it''s mine'\n", Encoding.UTF8.GetString(files["meta-data"]));
    }

    [Fact]
    public void Metadata_iso_is_read_back_by_xorriso()
    {
        var files = ReadBack(MetadataIso.Build([("config", "{\"a\":1}"u8.ToArray()), ("meta-data", "m"u8.ToArray())], Timestamp, "cidata"));

        Assert.Equal("{\"a\":1}", Encoding.UTF8.GetString(files["config"]));
        Assert.Equal("m", Encoding.UTF8.GetString(files["meta-data"]));
    }

    // The files as xorriso extracts them; without Rock Ridge, readers map the ISO name
    // META-DATA.;1 to "meta-data" (Linux) or "META-DATA".
    private static Dictionary<string, byte[]> ReadBack(byte[] image)
    {
        var dir = Directory.CreateTempSubdirectory("lkt-iso-");
        try
        {
            var iso = Path.Combine(dir.FullName, "meta.iso");
            File.WriteAllBytes(iso, image);
            var extracted = Path.Combine(dir.FullName, "out");
            var info = new ProcessStartInfo("xorriso") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "-indev", iso, "-osirrox", "on", "-extract", "/", extracted }) info.ArgumentList.Add(a);
            using var xorriso = Process.Start(info)!;
            var stderr = xorriso.StandardError.ReadToEnd();
            xorriso.WaitForExit();
            Assert.True(xorriso.ExitCode == 0, stderr);
            return Directory.GetFiles(extracted).ToDictionary(f => Path.GetFileName(f).ToLowerInvariant(), File.ReadAllBytes);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
