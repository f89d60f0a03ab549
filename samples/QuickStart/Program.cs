// Quick start: boot a LinuxKit image, run a command in it, print the output, clean up.
// Usage: dotnet run --project samples/QuickStart -- [IMAGE]   (default: the bundled test image)
using LinuxKit.Testing;

var image = args.Length > 0 ? args[0] : Path.Combine(AppContext.BaseDirectory, "../../../../../.cache/images/linuxkit-ssh");

await using var manager = new LinuxKitManager();
var vm = await manager.RunAsync(image, new RunOptions { Memory = 512 });
Console.WriteLine($"VM {vm.Id} is up (pid {vm.Pid}, ssh port {vm.SshPort})");

var result = await manager.ExecAsync(vm.Id, ["uname", "-a"]);
Console.Write(result.Stdout);

await manager.StopAsync(vm.Id);
Console.WriteLine($"VM {vm.Id} stopped");
return result.ExitCode;
