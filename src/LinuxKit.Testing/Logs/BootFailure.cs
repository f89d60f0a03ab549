namespace LinuxKit.Testing.Logs;

/// <summary>
/// The lines after which a boot cannot succeed: the firmware found nothing to boot, the loader
/// gave up, the kernel panicked or found no root. Seeing one ends the wait for SSH at once
/// instead of at the boot timeout.
/// </summary>
internal static class BootFailure
{
    // On the serial console: loaders and the kernel.
    private static readonly string[] ConsoleLines =
    [
        "Kernel panic - not syncing",
        "VFS: Unable to mount root",
        "grub rescue>",      // GRUB found neither its modules nor its config: a prompt, no newline
        "Boot failed: ",     // isolinux/syslinux giving up ("Boot failed: please change disks ...")
        "No bootable device",
        // UEFI (OVMF, AAVMF): with no boot option left the firmware starts its built-in shell,
        // or, built without one, says so.
        "\"EFI Internal Shell\"",
        "No bootable option or device was found",
    ];

    // In SeaBIOS's debug log only the last word counts: it prints "Boot failed" for each device
    // it tries, and "No bootable device" once every one failed.
    private static readonly string[] FirmwareLines = ["No bootable device"];

    /// <summary>
    /// The line that says the boot of the VM in <paramref name="files"/>' folder failed, from
    /// the end of its console, else of its firmware log; null while neither says so.
    /// </summary>
    public static string? InLogsOf(State.VmFiles files) =>
        InConsole(ConsoleLog.Tail(files.ConsoleLog, lines: 200)) ?? InFirmwareLog(ConsoleLog.Tail(files.FirmwareLog));

    /// <summary>The console line that says the boot failed, or null.</summary>
    public static string? InConsole(string consoleTail) => Find(consoleTail, ConsoleLines);

    /// <summary>The firmware log line that says the boot failed, or null.</summary>
    public static string? InFirmwareLog(string firmwareTail) => Find(firmwareTail, FirmwareLines);

    // The whole line of the earliest marker: the first sign of the failure, not its aftermath.
    private static string? Find(string text, string[] markers)
    {
        var at = markers.Select(m => text.IndexOf(m, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
        if (at < 0) return null;
        var start = text.LastIndexOf('\n', at) + 1;
        var end = text.IndexOf('\n', at);
        return text[start..(end < 0 ? text.Length : end)].Trim();
    }
}
