using LinuxKit.Testing;
using LinuxKit.Testing.Xunit;
using Xunit;
using Xunit.Abstractions;

namespace LinuxKit.Testing.Benchmarks.TenFixtures;

// Each class below gets its own VM, as ten test classes with IClassFixture<LinuxKitVm> would.
// The image comes from LINUXKIT_IMAGE; how the VMs stop, from LINUXKIT_BENCH_STOP.
public class BenchVm(IMessageSink sink) : LinuxKitVm(sink)
{
    protected override void Configure() => Options = Options with
    {
        Memory = 256,
        StopMode = Enum.Parse<StopMode>(Environment.GetEnvironmentVariable("LINUXKIT_BENCH_STOP") ?? "Fast"),
    };
}

public class Fixture01Tests(BenchVm vm) : IClassFixture<BenchVm>
{
    [Fact]
    public async Task Guest_answers() => Assert.Equal("Linux\n", (await vm.ExecAsync("uname", "-s")).Stdout);
}

public class Fixture02Tests(BenchVm vm) : IClassFixture<BenchVm>
{
    [Fact]
    public async Task Guest_answers() => Assert.Equal("Linux\n", (await vm.ExecAsync("uname", "-s")).Stdout);
}

public class Fixture03Tests(BenchVm vm) : IClassFixture<BenchVm>
{
    [Fact]
    public async Task Guest_answers() => Assert.Equal("Linux\n", (await vm.ExecAsync("uname", "-s")).Stdout);
}

public class Fixture04Tests(BenchVm vm) : IClassFixture<BenchVm>
{
    [Fact]
    public async Task Guest_answers() => Assert.Equal("Linux\n", (await vm.ExecAsync("uname", "-s")).Stdout);
}

public class Fixture05Tests(BenchVm vm) : IClassFixture<BenchVm>
{
    [Fact]
    public async Task Guest_answers() => Assert.Equal("Linux\n", (await vm.ExecAsync("uname", "-s")).Stdout);
}

public class Fixture06Tests(BenchVm vm) : IClassFixture<BenchVm>
{
    [Fact]
    public async Task Guest_answers() => Assert.Equal("Linux\n", (await vm.ExecAsync("uname", "-s")).Stdout);
}

public class Fixture07Tests(BenchVm vm) : IClassFixture<BenchVm>
{
    [Fact]
    public async Task Guest_answers() => Assert.Equal("Linux\n", (await vm.ExecAsync("uname", "-s")).Stdout);
}

public class Fixture08Tests(BenchVm vm) : IClassFixture<BenchVm>
{
    [Fact]
    public async Task Guest_answers() => Assert.Equal("Linux\n", (await vm.ExecAsync("uname", "-s")).Stdout);
}

public class Fixture09Tests(BenchVm vm) : IClassFixture<BenchVm>
{
    [Fact]
    public async Task Guest_answers() => Assert.Equal("Linux\n", (await vm.ExecAsync("uname", "-s")).Stdout);
}

public class Fixture10Tests(BenchVm vm) : IClassFixture<BenchVm>
{
    [Fact]
    public async Task Guest_answers() => Assert.Equal("Linux\n", (await vm.ExecAsync("uname", "-s")).Stdout);
}
