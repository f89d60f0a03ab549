namespace LinuxKit.Testing;

/// <summary>
/// Every fixed limit on how long one step may take, in one place and under one naming rule: a
/// member says what is bounded, its value is the most that step may take before the SDK gives
/// up on it (and says so). What the caller sets (boot timeout, stop timeout) lives in
/// <see cref="RunOptions"/> and <see cref="LinuxKitManagerOptions"/>; poll intervals and backoff
/// delays stay beside the loop they pace.
/// </summary>
internal static class TimeLimits
{
    /// <summary>One SSH connect and handshake; a retry follows (see SshSessionPool).</summary>
    public static readonly TimeSpan SshConnect = TimeSpan.FromSeconds(10);

    /// <summary>
    /// One SSH channel request (open, exec): a guest under TCG on a loaded host answers slowly,
    /// and one that never answers must not hang the caller.
    /// </summary>
    public static readonly TimeSpan SshChannelRequest = TimeSpan.FromSeconds(15);

    /// <summary>
    /// A warm-start clone answering over SSH: a restored guest answers within a second or two;
    /// one that does not is broken, and booting cold is quicker than waiting for the boot timeout.
    /// </summary>
    public static readonly TimeSpan Restore = TimeSpan.FromSeconds(20);

    /// <summary>Waiting beyond the boot timeout for another process that makes the same template.</summary>
    public static readonly TimeSpan OtherTemplateMaker = TimeSpan.FromSeconds(30);

    /// <summary>Removing a template that a process is making: its lock is waited for this long.</summary>
    public static readonly TimeSpan TemplateRemoval = TimeSpan.FromSeconds(30);

    /// <summary>Saving a template once it answered (its RAM to disk): a maker past its boot timeout and this has given up.</summary>
    public static readonly TimeSpan TemplateSave = TimeSpan.FromMinutes(5);

    /// <summary>A staging folder that names no maker (left between its creation and the maker file's).</summary>
    public static readonly TimeSpan UnnamedStaging = TimeSpan.FromMinutes(5);

    /// <summary>The state directory's lock: held only for a file read or write, so a longer wait means a stuck holder.</summary>
    public static readonly TimeSpan StateLock = TimeSpan.FromSeconds(30);

    /// <summary>A record still being prepared by a live owner (a disk overlay, a template) before it has a hypervisor.</summary>
    public static readonly TimeSpan Preparation = TimeSpan.FromMinutes(10);

    /// <summary>Hyperkit writing its pid file after it was started.</summary>
    public static readonly TimeSpan HyperkitStartup = TimeSpan.FromSeconds(30);

    /// <summary>QEMU ending after 'quit' (it ends at once; its overlay is thrown away after).</summary>
    public static readonly TimeSpan QemuQuit = TimeSpan.FromSeconds(2);

    /// <summary>
    /// One QMP exchange: QEMU serves one client at a time, so with another client connected (or
    /// QEMU wedged) the greeting never comes.
    /// </summary>
    public static readonly TimeSpan Qmp = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Saving or loading a template's device state: a few hundred KB (RAM is in the memory file,
    /// which x-ignore-shared leaves out of the stream).
    /// </summary>
    public static readonly TimeSpan Migration = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The first step of a stop (a request over the control channel): one that does not answer
    /// (a wedged hypervisor, another client on the socket) must not hold the stop; signals take over.
    /// </summary>
    public static readonly TimeSpan StopRequest = TimeSpan.FromSeconds(5);

    /// <summary>A process ending after SIGTERM, before SIGKILL.</summary>
    public static readonly TimeSpan StopSignal = TimeSpan.FromSeconds(5);

    /// <summary>Flushing what the guest wrote to volumes before a fast stop: best effort, a hung guest must not hold the stop.</summary>
    public static readonly TimeSpan VolumeFlush = TimeSpan.FromSeconds(2);

    /// <summary>A port reservation whose process has not bound the port yet: past this it is stale.</summary>
    public static readonly TimeSpan PortReservation = TimeSpan.FromMinutes(2);

    /// <summary>The KubeVirt bridge ending once asked to stop its VM.</summary>
    public static readonly TimeSpan KubeVirtBridgeStop = TimeSpan.FromSeconds(20);

    /// <summary>A one-shot KubeVirt bridge command (doctor, prune).</summary>
    public static readonly TimeSpan KubeVirtOneShot = TimeSpan.FromMinutes(2);
}
