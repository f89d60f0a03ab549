using LinuxKit.Testing;
using LinuxKit.Testing.Xunit;
using Xunit;
using Xunit.Abstractions;

namespace LinuxKit.Testing.Benchmarks.TenFixtures;

// Ten test classes, each with a VM of its own, as ten classes with IClassFixture<LinuxKitVm>
// would have. The image comes from LINUXKIT_IMAGE; how the VMs stop, from LINUXKIT_BENCH_STOP.
public class BenchVm(IMessageSink sink) : LinuxKitVm(sink)
{
    protected override void Configure() => Options = Options with
    {
        Memory = 256,
        StopMode = Enum.Parse<StopMode>(Environment.GetEnvironmentVariable("LINUXKIT_BENCH_STOP") ?? "Fast"),
    };
}

public abstract class GuestTests(BenchVm vm) : IClassFixture<BenchVm>
{
    [Fact]
    public async Task Guest_answers() => Assert.Equal("Linux\n", (await vm.ExecAsync("uname", "-s")).Stdout);
}

public class Fixture01Tests(BenchVm vm) : GuestTests(vm);
public class Fixture02Tests(BenchVm vm) : GuestTests(vm);
public class Fixture03Tests(BenchVm vm) : GuestTests(vm);
public class Fixture04Tests(BenchVm vm) : GuestTests(vm);
public class Fixture05Tests(BenchVm vm) : GuestTests(vm);
public class Fixture06Tests(BenchVm vm) : GuestTests(vm);
public class Fixture07Tests(BenchVm vm) : GuestTests(vm);
public class Fixture08Tests(BenchVm vm) : GuestTests(vm);
public class Fixture09Tests(BenchVm vm) : GuestTests(vm);
public class Fixture10Tests(BenchVm vm) : GuestTests(vm);
