// Quick start: boot a LinuxKit image, run a command in it, print the output, clean up.
// Usage: dotnet run --project samples/QuickStart -- IMAGE   (build/quickstart.sh passes the bundled image)
using LinuxKit.Testing;

if (args.Length != 1)
{
    Console.Error.WriteLine("usage: QuickStart IMAGE   (a LinuxKit image file or kernel+initrd prefix)");
    return 2;
}
var image = args[0];

await using var manager = new LinuxKitManager();
var vm = await manager.RunAsync(image, new RunOptions { Memory = 512 });
Console.WriteLine($"VM {vm.Id} is up (pid {vm.Pid}, ssh port {vm.SshPort})");

var result = await manager.ExecAsync(vm.Id, ["uname", "-a"]);
Console.Write(result.Stdout);

await manager.StopAsync(vm.Id);
Console.WriteLine($"VM {vm.Id} stopped");
return result.ExitCode;
