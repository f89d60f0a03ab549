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
        var iso = MetadataIso.Build("{}"u8, Timestamp);
        Assert.Equal(ImageFormat.Iso, ImageSignature.Detect(iso));
        Assert.Equal(0, iso.Length % 2048);
        Assert.Equal(iso.Length / 2048, BinaryPrimitives.ReadInt32LittleEndian(iso.AsSpan(0x8000 + 80)));
    }

    [Fact]
    public void Metadata_iso_root_holds_one_config_file_with_the_content()
    {
        var content = Encoding.UTF8.GetBytes(new string('x', 5000) + "end");
        var iso = MetadataIso.Build(content, Timestamp);
        var rootExtent = BinaryPrimitives.ReadInt32LittleEndian(iso.AsSpan(0x8000 + 156 + 2));
        var dir = iso.AsSpan(rootExtent * 2048, 2048);
        var offset = dir[0] + dir[dir[0]]; // skip "." and ".."
        var record = dir[offset..];
        var name = Encoding.ASCII.GetString(record.Slice(33, record[32]));
        Assert.Equal("CONFIG.;1", name);
        var extent = BinaryPrimitives.ReadInt32LittleEndian(record[2..]);
        var length = BinaryPrimitives.ReadInt32LittleEndian(record[10..]);
        Assert.Equal(content.Length, length);
        Assert.Equal(content, iso.AsSpan(extent * 2048, length).ToArray());
    }

    [Fact]
    public void Metadata_iso_is_read_back_by_xorriso()
    {
        var dir = Directory.CreateTempSubdirectory("lkt-iso-");
        try
        {
            var iso = Path.Combine(dir.FullName, "meta.iso");
            File.WriteAllBytes(iso, MetadataIso.Build("{\"a\":1}"u8, Timestamp));
            var extracted = Path.Combine(dir.FullName, "out");
            var info = new ProcessStartInfo("xorriso") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "-indev", iso, "-osirrox", "on", "-extract", "/", extracted }) info.ArgumentList.Add(a);
            using var xorriso = Process.Start(info)!;
            var stderr = xorriso.StandardError.ReadToEnd();
            xorriso.WaitForExit();
            Assert.True(xorriso.ExitCode == 0, stderr);
            // Without Rock Ridge, readers map the ISO name CONFIG.;1 to "config" (Linux) or "CONFIG".
            var file = Assert.Single(Directory.GetFiles(extracted));
            Assert.Equal("config", Path.GetFileName(file).ToLowerInvariant());
            Assert.Equal("{\"a\":1}", File.ReadAllText(file));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
