// Stand-ins for macOS tools, for tests on Linux. Each records its arguments next to the files
// it is given, then behaves as the real tool does as far as the SDK can tell:
//   hyperkit            writes its pid to -F, boots the VM with QEMU (kexec -> -kernel/-initrd,
//                       virtio-blk -> a raw virtio disk, ahci-cd -> SCSI CD-ROMs that the test
//                       kernel can read, com1,stdio -> the serial console on stdout), and turns
//                       SIGTERM into an ACPI power button press, as hyperkit does.
//   vpnkit              opens its ethernet and port sockets and waits.
//   vpnkit-expose-port  publishes 127.0.0.1:host-port on the guest port (QEMU hostfwd_add
//                       through the stand-in hyperkit's QMP socket) and waits.
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

return args.FirstOrDefault() switch
{
    "hyperkit" => await Hyperkit(args[1..]),
    "vpnkit" => await VpnKit(args[1..]),
    "vpnkit-expose-port" => await ExposePort(args[1..]),
    _ => Fail("usage: StandIn hyperkit|vpnkit|vpnkit-expose-port ARGS"),
};

static int Fail(string message)
{
    Console.Error.WriteLine("stand-in: " + message);
    return 2;
}

static string Value(string[] args, string flag) =>
    args.SkipWhile(a => a != flag).Skip(1).FirstOrDefault() ?? throw new ArgumentException($"missing {flag}");

// The SDK starts one vpnkit-expose-port per published port at once. FileMode.Append alone lets
// two of them open the file at the same end and write over each other: each takes the file
// for itself (flock, which .NET uses for FileShare.None) before it goes to the end.
static void Record(string directory, string name, string[] args)
{
    var line = System.Text.Encoding.UTF8.GetBytes(string.Join('\n', args) + "\n\n");
    for (var attempt = 0; ; attempt++)
    {
        try
        {
            using var file = new FileStream(Path.Combine(directory, name), FileMode.OpenOrCreate, FileAccess.Write, FileShare.None);
            file.Seek(0, SeekOrigin.End);
            file.Write(line);
            return;
        }
        catch (IOException) when (attempt < 500)
        {
            Thread.Sleep(10);
        }
    }
}

static async Task<int> Hyperkit(string[] args)
{
    var pidFile = Value(args, "-F");
    var dir = Path.GetDirectoryName(pidFile)!;
    Record(dir, "hyperkit.args", args);
    var qmpSocket = Path.Combine(dir, "standin-qmp.sock");

    var qemu = new List<string>
    {
        "-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "tcg", "-cpu", "max",
        "-smp", Value(args, "-c"), "-m", Value(args, "-m"), "-display", "none",
        "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
        "-qmp", $"unix:{qmpSocket},server=on,wait=off",
        "-device", "virtio-scsi-pci,id=scsi0",
    };
    var cd = 0;
    for (var i = 0; i < args.Length - 1; i++)
    {
        if (args[i] == "-s")
        {
            var parts = args[i + 1].Split(',');
            switch (parts[1])
            {
                case "virtio-vpnkit":
                    qemu.AddRange(["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0"]);
                    break;
                case "virtio-blk":
                    qemu.AddRange(["-drive", $"if=none,id=disk,file={parts[2]},format=raw", "-device", "virtio-blk-pci,drive=disk,bootindex=0"]);
                    break;
                case "ahci-cd":
                    qemu.AddRange(["-drive", $"if=none,id=cd{cd},file={parts[2]},format=raw,media=cdrom,readonly=on", "-device", $"scsi-cd,drive=cd{cd},bus=scsi0.0"]);
                    cd++;
                    break;
            }
        }
        else if (args[i] == "-f")
        {
            var boot = args[i + 1].Split(',', 4);
            // A bootrom boot is emulated with QEMU's own firmware: the test images are BIOS images.
            if (boot[0] == "kexec") qemu.AddRange(["-kernel", boot[1], "-initrd", boot[2], "-append", boot[3]]);
        }
    }

    await File.WriteAllTextAsync(pidFile, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
    var info = new ProcessStartInfo("qemu-system-x86_64") { UseShellExecute = false };
    foreach (var a in qemu) info.ArgumentList.Add(a);
    using var vm = Process.Start(info)!;
    // QEMU ends with this process even when it is killed with SIGKILL.
    Process.Start("/bin/sh", ["-c", $"while kill -0 {Environment.ProcessId} 2>/dev/null; do sleep 0.2; done; kill -9 {vm.Id} 2>/dev/null"]);
    using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
    {
        context.Cancel = true;
        _ = Qmp(qmpSocket, """{"execute":"system_powerdown"}""");
    });
    await vm.WaitForExitAsync();
    return vm.ExitCode;
}

static async Task<int> VpnKit(string[] args)
{
    var ethernet = Value(args, "--ethernet");
    Record(Path.GetDirectoryName(ethernet)!, "vpnkit.args", args);
    using var eth = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    eth.Bind(new UnixDomainSocketEndPoint(ethernet));
    eth.Listen();
    using var port = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    port.Bind(new UnixDomainSocketEndPoint(Value(args, "--port")));
    port.Listen();
    await Task.Delay(Timeout.Infinite);
    return 0;
}

static async Task<int> ExposePort(string[] args)
{
    var dir = Path.GetDirectoryName(Value(args, "-vpnkit"))!;
    Record(dir, "expose-port.args", args);
    var qmpSocket = Path.Combine(dir, "standin-qmp.sock");
    for (var i = 0; i < 200 && !File.Exists(qmpSocket); i++) await Task.Delay(50);
    var forward = $"hostfwd_add net0 tcp:{Value(args, "-host-ip")}:{Value(args, "-host-port")}-:{Value(args, "-container-port")}";
    var reply = await Qmp(qmpSocket, """{"execute":"human-monitor-command","arguments":{"command-line":"FORWARD"}}""".Replace("FORWARD", forward, StringComparison.Ordinal));
    if (!reply.Contains("\"return\": \"\"", StringComparison.Ordinal) && !reply.Contains("\"return\":\"\"", StringComparison.Ordinal))
        return Fail("cannot publish the port: " + reply);
    await Task.Delay(Timeout.Infinite);
    return 0;
}

static async Task<string> Qmp(string socketPath, string command)
{
    using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
    using var stream = new NetworkStream(socket);
    using var reader = new StreamReader(stream);
    await using var writer = new StreamWriter(stream) { AutoFlush = true };
    await reader.ReadLineAsync(); // greeting
    await writer.WriteLineAsync("""{"execute":"qmp_capabilities"}""");
    await reader.ReadLineAsync();
    await writer.WriteLineAsync(command);
    string? line;
    while ((line = await reader.ReadLineAsync()) is not null && line.Contains("\"event\"", StringComparison.Ordinal)) { }
    return line ?? "";
}
