using LinuxKit.Testing.Logs;

namespace LinuxKit.Testing.Tests.Logs;

public class BootFailureTests
{
    [Theory]
    [InlineData("[    1.2] VFS: Unable to mount root fs on unknown-block(0,0)\n[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs", "[    1.2] VFS: Unable to mount root fs on unknown-block(0,0)")]
    [InlineData("[    0.9] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n", "[    0.9] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100")]
    [InlineData("error: no such device.\nEntering rescue mode...\ngrub rescue> ", "grub rescue>")]
    [InlineData("Could not find kernel image: vmlinuz\nBoot failed: please change disks and press a key to continue.\n", "Boot failed: please change disks and press a key to continue.")]
    [InlineData("BdsDxe: failed to load Boot0001 \"UEFI QEMU HARDDISK\" from PciRoot(0x0): Not Found\nBdsDxe: loading Boot0002 \"EFI Internal Shell\" from Fv(7CB8BDC9)\n", "BdsDxe: loading Boot0002 \"EFI Internal Shell\" from Fv(7CB8BDC9)")]
    [InlineData("BdsDxe: No bootable option or device was found.\nBdsDxe: Press any key to enter the Boot Manager Menu.\n", "BdsDxe: No bootable option or device was found.")]
    public void A_console_line_after_which_no_boot_can_succeed_is_found(string console, string line) =>
        Assert.Equal(line, BootFailure.InConsole(console));

    [Theory]
    [InlineData("Linux version 6.1.0\nWelcome to LinuxKit\nlogin: ")]
    [InlineData("BdsDxe: loading Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x1,0x0)\nBdsDxe: starting Boot0001 \"UEFI Misc Device\"\nWelcome to GRUB!\n")]
    [InlineData("")]
    public void A_console_of_a_healthy_boot_has_none(string console) => Assert.Null(BootFailure.InConsole(console));

    [Fact]
    public void In_the_firmware_log_a_device_that_failed_is_no_failure_until_every_device_failed()
    {
        const string triedDisk = "Booting from Hard Disk...\nBoot failed: not a bootable disk\n\nBooting from DVD/CD...\n";
        Assert.Null(BootFailure.InFirmwareLog(triedDisk));
        Assert.Equal("No bootable device.", BootFailure.InFirmwareLog(triedDisk + "Boot failed: could not read the boot disk\n\nNo bootable device.\n"));
    }
}
