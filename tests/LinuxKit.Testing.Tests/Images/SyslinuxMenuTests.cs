using LinuxKit.Testing.Images;

namespace LinuxKit.Testing.Tests.Images;

/// <summary>Which entry an ISOLINUX/SYSLINUX configuration boots, and the command line its kernel sees.</summary>
public class SyslinuxMenuTests
{
    [Fact]
    public void An_INITRD_line_comes_after_the_APPEND_line_as_initrd_and_the_kernel_as_BOOT_IMAGE_before_it()
    {
        // As LinuxKit's mkimage-iso-bios writes it; SYSLINUX 6 passes exactly this (seen in /proc/cmdline).
        var menu = SyslinuxMenu.Parse("DEFAULT linux\nLABEL linux\n    KERNEL /vmlinuz64\n    INITRD /initrd.img\n    APPEND console=ttyS0 quiet\n", "/isolinux/isolinux.cfg");
        Assert.Equal(new SyslinuxMenu("/vmlinuz64", "/initrd.img", "BOOT_IMAGE=/vmlinuz64 console=ttyS0 quiet initrd=/initrd.img"), menu);
    }

    [Fact]
    public void An_initrd_in_the_APPEND_line_stays_where_it_is()
    {
        var menu = SyslinuxMenu.Parse("default linux\r\nprompt 0\r\nlabel linux\r\n  kernel /kernel\r\n  append initrd=/initrd.img console=ttyS0\r\n", "/syslinux.cfg");
        Assert.Equal(new SyslinuxMenu("/kernel", "/initrd.img", "BOOT_IMAGE=/kernel initrd=/initrd.img console=ttyS0"), menu);
    }

    [Fact]
    public void Relative_paths_are_read_from_the_configurations_folder_and_the_global_APPEND_serves_a_label_without_one()
    {
        var menu = SyslinuxMenu.Parse("APPEND console=ttyS0\nDEFAULT b\nLABEL a\n  LINUX /a\nLABEL b\n  LINUX vmlinuz\n  INITRD initrd.gz\n", "/boot/isolinux/isolinux.cfg");
        Assert.Equal(new SyslinuxMenu("/boot/isolinux/vmlinuz", "/boot/isolinux/initrd.gz", "BOOT_IMAGE=vmlinuz console=ttyS0 initrd=initrd.gz"), menu);
    }

    [Fact]
    public void A_single_label_boots_without_DEFAULT_and_APPEND_dash_means_no_arguments()
    {
        Assert.Equal(new SyslinuxMenu("/kernel", null, "BOOT_IMAGE=/kernel"), SyslinuxMenu.Parse("LABEL only\n KERNEL /kernel\n APPEND -\n", "/syslinux.cfg"));
    }

    [Fact]
    public void A_configuration_that_waits_for_no_one_and_names_its_entry_only_starts_it()
    {
        var menu = SyslinuxMenu.Parse("# LinuxKit\nDEFAULT linux\nPROMPT 0\nTIMEOUT 50\nMENU TITLE LinuxKit\nLABEL linux\n  MENU LABEL LinuxKit\n  KERNEL /kernel\n  APPEND console=ttyS0\n", "/syslinux.cfg");
        Assert.Null(menu.DoesMore);
    }

    [Theory]
    [InlineData("UI menu.c32")]
    [InlineData("PROMPT 1")]
    [InlineData("SERIAL 0 115200")]
    [InlineData("SAY Booting LinuxKit")]
    [InlineData("DISPLAY boot.msg")]
    [InlineData("IPAPPEND 2")]
    [InlineData("ONTIMEOUT linux")]
    public void A_line_that_has_the_boot_loader_do_more_than_start_its_entry_is_named(string line)
    {
        var menu = SyslinuxMenu.Parse($"DEFAULT linux\n{line}\nLABEL linux\n  KERNEL /kernel\n", "/syslinux.cfg");
        Assert.Equal(line, menu.DoesMore);
    }

    [Theory]
    [InlineData("DEFAULT other\nLABEL linux\n KERNEL /kernel\n", "'DEFAULT other', which names no LABEL")]
    [InlineData("LABEL a\n KERNEL /a\nLABEL b\n KERNEL /b\n", "2 labels and no DEFAULT")]
    [InlineData("DEFAULT menu\nLABEL menu\n KERNEL vesamenu.c32\n", "starts the module vesamenu.c32, not a Linux kernel")]
    [InlineData("DEFAULT l\nLABEL l\n KERNEL /k\n APPEND initrd=/a,/b\n", "loads more than one initrd")]
    [InlineData("DEFAULT l\nLABEL l\n KERNEL /k\n INITRD /a\n APPEND initrd=/b\n", "loads more than one initrd")]
    [InlineData("INCLUDE common.cfg\nDEFAULT l\nLABEL l\n KERNEL /k\n", "reads further configuration (INCLUDE common.cfg)")]
    [InlineData("DEFAULT l\nLABEL l\n APPEND quiet\n", "LABEL l names no KERNEL")]
    public void A_menu_that_cannot_be_followed_says_why(string text, string reason)
    {
        var error = Assert.Throws<InvalidDataException>(() => SyslinuxMenu.Parse(text, "/syslinux.cfg"));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }
}
