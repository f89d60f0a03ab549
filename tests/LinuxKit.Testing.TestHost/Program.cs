// Usage: TestHost run [--detach] [--name NAME] IMAGE
// Starts a VM in the state directory named by LINUXKIT_TESTING_HOME and prints "ID PID".
// With --detach it exits at once (the VM keeps running); without, it waits until killed.
// A VM that cannot start: its error on stderr, exit code 1.
using LinuxKit.Testing;

if (args.Length < 2 || args[0] != "run")
{
    Console.Error.WriteLine("usage: TestHost run [--detach] IMAGE");
    return 2;
}
var detach = args.Contains("--detach");
var name = args.SkipWhile(a => a != "--name").Skip(1).FirstOrDefault();
var image = args[^1];

await using var manager = new LinuxKitManager();
Container vm;
try
{
    vm = await manager.RunAsync(image, new RunOptions { Detach = detach, Memory = 256, Name = name });
}
catch (LinuxKitException e)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}
Console.WriteLine($"{vm.Id} {vm.Pid}");
Console.Out.Flush();
if (!detach) await Task.Delay(Timeout.Infinite);
return 0;
