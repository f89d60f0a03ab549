// Usage: TestHost run [--detach] IMAGE
// Starts a VM in the state directory named by LINUXKIT_TESTING_HOME and prints "ID PID".
// With --detach it exits at once (the VM keeps running); without, it waits until killed.
using LinuxKit.Testing;

if (args.Length < 2 || args[0] != "run")
{
    Console.Error.WriteLine("usage: TestHost run [--detach] IMAGE");
    return 2;
}
var detach = args.Contains("--detach");
var image = args[^1];

await using var manager = new LinuxKitManager();
var vm = await manager.RunAsync(image, new RunOptions { Detach = detach, Memory = 256 });
Console.WriteLine($"{vm.Id} {vm.Pid}");
Console.Out.Flush();
if (!detach) await Task.Delay(Timeout.Infinite);
return 0;
