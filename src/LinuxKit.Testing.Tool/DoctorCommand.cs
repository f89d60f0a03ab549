using System.CommandLine;

namespace LinuxKit.Testing.Tool;

/// <summary>doctor: whether this host can run VMs, and what to fix.</summary>
internal static class DoctorCommand
{
    public static Command Create(ToolContext context)
    {
        var command = new Command("doctor", "Check QEMU, qemu-img, the accelerator, the state directory and ports; exit code 1 if VMs cannot run until something is fixed.");
        command.SetAction(async (parsed, token) =>
        {
            var checks = await LinuxKitDoctor.CheckAsync(context.Options(parsed), token);
            foreach (var check in checks)
            {
                var label = check.Status switch { DoctorStatus.Ok => "ok  ", DoctorStatus.Warning => "warn", _ => "FIX " };
                Console.WriteLine($"{label} {check.Name}: {check.Detail}");
            }
            return checks.Any(c => c.Status == DoctorStatus.Failed) ? ExitCodes.Failed : ExitCodes.Ok;
        });
        return command;
    }
}
