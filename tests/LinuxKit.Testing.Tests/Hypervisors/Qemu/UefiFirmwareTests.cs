using LinuxKit.Testing.Hypervisors.Qemu;

namespace LinuxKit.Testing.Tests.Hypervisors.Qemu;

/// <summary>Choosing UEFI firmware from QEMU's firmware descriptors, as libvirt does.</summary>
public class UefiFirmwareTests
{
    private static string Descriptor(string arch, string code, string vars, string features = "", string interfaces = "\"uefi\"", string device = "flash") => $$"""
        {
          "interface-types": [ {{interfaces}} ],
          "mapping": {
            "device": "{{device}}",
            "executable": { "filename": "{{code}}", "format": "raw" },
            "nvram-template": { "filename": "{{vars}}", "format": "raw" }
          },
          "targets": [ { "architecture": "{{arch}}", "machines": [ "pc-q35-*", "virt-*" ] } ],
          "features": [ {{features}} ]
        }
        """;

    // As Debian's ovmf and qemu-efi-aarch64 install them: secure builds sort first.
    private static readonly (string Name, string Json)[] Debian =
    [
        ("40-edk2-x86_64-secure-enrolled.json", Descriptor("x86_64", "/ovmf/CODE.secboot.fd", "/ovmf/VARS.ms.fd", "\"enrolled-keys\", \"requires-smm\", \"secure-boot\"")),
        ("50-edk2-x86_64-secure.json", Descriptor("x86_64", "/ovmf/CODE.secboot.fd", "/ovmf/VARS.fd", "\"requires-smm\", \"secure-boot\"")),
        ("55-broken.json", "{ not json"),
        ("56-bios.json", Descriptor("x86_64", "/seabios/bios.bin", "/seabios/none", interfaces: "\"bios\"")),
        ("60-edk2-aarch64.json", Descriptor("aarch64", "/aavmf/CODE.fd", "/aavmf/VARS.fd", "\"verbose-static\"")),
        ("60-edk2-x86_64.json", Descriptor("x86_64", "/ovmf/CODE.fd", "/ovmf/VARS.fd", "\"acpi-s3\", \"verbose-dynamic\"")),
    ];

    [Theory]
    [InlineData(GuestArchitecture.X64, "/ovmf/CODE.fd", "/ovmf/VARS.fd")]
    [InlineData(GuestArchitecture.Arm64, "/aavmf/CODE.fd", "/aavmf/VARS.fd")]
    public void The_first_plain_UEFI_flash_build_for_the_architecture_is_chosen_skipping_secure_boot_and_damaged_descriptors(GuestArchitecture arch, string code, string vars)
    {
        var chosen = UefiFirmware.Choose(Debian, arch, _ => true);
        Assert.NotNull(chosen);
        Assert.Equal((code, vars), (chosen.Code, chosen.VarsTemplate));
        Assert.StartsWith("descriptor ", chosen.Source, StringComparison.Ordinal);
    }

    [Fact]
    public void A_descriptor_whose_files_are_missing_is_passed_over()
    {
        (string, string)[] descriptors =
        [
            ("10-gone.json", Descriptor("x86_64", "/gone/CODE.fd", "/gone/VARS.fd")),
            ("20-here.json", Descriptor("x86_64", "/here/CODE.fd", "/here/VARS.fd")),
        ];
        Assert.Equal("/here/CODE.fd", UefiFirmware.Choose(descriptors, GuestArchitecture.X64, f => f.StartsWith("/here", StringComparison.Ordinal))?.Code);
    }

    [Fact]
    public void Nothing_suits_when_only_secure_boot_memory_mapped_or_other_architectures_are_described()
    {
        (string, string)[] descriptors =
        [
            ("50-secure.json", Descriptor("x86_64", "/a", "/b", "\"secure-boot\"")),
            ("60-memory.json", Descriptor("x86_64", "/a", "/b", device: "memory")),
            ("70-arm.json", Descriptor("aarch64", "/a", "/b")),
        ];
        Assert.Null(UefiFirmware.Choose(descriptors, GuestArchitecture.X64, _ => true));
    }

    [Fact]
    public void The_installed_QEMUs_own_prefix_is_searched_before_the_system_folder()
    {
        var folders = UefiFirmware.DescriptorFolders("/opt/homebrew/bin/qemu-system-aarch64").ToList();
        Assert.True(folders.IndexOf("/opt/homebrew/share/qemu/firmware") < folders.IndexOf("/usr/share/qemu/firmware"));
        Assert.EndsWith("/qemu/firmware", folders[0], StringComparison.Ordinal); // the user's own come first
    }
}

/// <summary>The firmware named in the environment; these tests change it, so they run alone.</summary>
[Collection(Fixtures.ProcessEnvironment.Name)]
public class UefiFirmwareFromEnvironmentTests
{
    [Fact]
    public void Code_without_its_variables_template_is_refused_naming_both_variables()
    {
        Environment.SetEnvironmentVariable(LinuxKitEnvironment.UefiCode, "/usr/share/OVMF/OVMF_CODE_4M.fd");
        try
        {
            var error = Assert.Throws<LinuxKitException>(() => UefiFirmware.Find(GuestArchitecture.X64, "/usr/bin/qemu-system-x86_64"));
            Assert.Equal($"Set both {LinuxKitEnvironment.UefiCode} (the firmware code) and {LinuxKitEnvironment.UefiVars} (its variables template), or neither.", error.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable(LinuxKitEnvironment.UefiCode, null);
        }
    }

    [Fact]
    public void Files_named_in_the_environment_win_and_must_exist()
    {
        var code = Path.GetTempFileName();
        Environment.SetEnvironmentVariable(LinuxKitEnvironment.UefiCode, code);
        Environment.SetEnvironmentVariable(LinuxKitEnvironment.UefiVars, code + ".missing");
        try
        {
            var error = Assert.Throws<LinuxKitException>(() => UefiFirmware.Find(GuestArchitecture.Arm64, "/usr/bin/qemu-system-aarch64"));
            Assert.Contains($"'{code}.missing'", error.Message, StringComparison.Ordinal);
            Environment.SetEnvironmentVariable(LinuxKitEnvironment.UefiVars, code);
            Assert.Equal(new UefiFirmware(code, code, "the environment"), UefiFirmware.Find(GuestArchitecture.Arm64, "/usr/bin/qemu-system-aarch64"));
        }
        finally
        {
            Environment.SetEnvironmentVariable(LinuxKitEnvironment.UefiCode, null);
            Environment.SetEnvironmentVariable(LinuxKitEnvironment.UefiVars, null);
            File.Delete(code);
        }
    }
}
