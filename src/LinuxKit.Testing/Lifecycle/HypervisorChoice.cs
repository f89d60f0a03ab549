using System.Collections.Concurrent;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.State;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Lifecycle;

/// <summary>
/// The hypervisor new VMs boot with (made on first use, so that listing or stopping works where
/// QEMU is not installed), and the one each existing VM was started under: a VM is stopped and
/// paused by its own, whichever this manager boots with.
/// </summary>
internal sealed class HypervisorChoice
{
    private readonly LinuxKitManagerOptions _options;
    private readonly Func<string, string> _scratch;
    private readonly ILogger _logger;
    private readonly Lazy<IHypervisor> _default;
    private readonly bool _given;
    private readonly ConcurrentDictionary<HypervisorKind, IHypervisor> _others = new();

    /// <param name="options">The manager's options.</param>
    /// <param name="given">A fixed hypervisor (tests give fakes); null picks what the options, the environment and the host call for.</param>
    /// <param name="scratch">The state directory's scratch folders.</param>
    /// <param name="logger">Where the choice is explained.</param>
    public HypervisorChoice(LinuxKitManagerOptions options, Func<IHypervisor>? given, Func<string, string> scratch, ILogger logger)
    {
        _options = options;
        _scratch = scratch;
        _logger = logger;
        _default = new Lazy<IHypervisor>(given ?? (() => HypervisorFactory.Create(options, scratch, logger)));
        _given = given is not null;
    }

    public IHypervisor Default => _default.Value;

    /// <summary>
    /// The hypervisor new VMs boot with when it keeps resources outside this host (a cluster's
    /// VMs), for pruning them; null otherwise, without making a local one.
    /// </summary>
    public IRemoteResources? Remote =>
        _given ? _default.Value as IRemoteResources
        : HypervisorFactory.KeepsRemoteResources(HypervisorFactory.Requested(_options)) ? _default.Value as IRemoteResources : null;

    public IHypervisor For(VmRecord record)
    {
        if (record.Hypervisor == Default.Kind) return Default;
        if (_given) throw new LinuxKitException($"VM {record.Id} runs under {record.Hypervisor}, this manager uses {Default.Kind}.");
        return _others.GetOrAdd(record.Hypervisor, kind => HypervisorFactory.Create(_options with { Hypervisor = kind }, _scratch, _logger));
    }
}
