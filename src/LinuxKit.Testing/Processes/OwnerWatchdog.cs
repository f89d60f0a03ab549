using System.Diagnostics;

namespace LinuxKit.Testing.Processes;

/// <summary>
/// Ties a VM's life to this process, even when this process is killed with SIGKILL: a small
/// shell reads a pipe that only this process holds open, and when the kernel closes it (exit,
/// crash, kill) the shell terminates the VM's hypervisor and deletes its disk overlay.
/// The shell leaves this process's tree at once (its parent exits), so that a runner that kills
/// the whole tree of a hung test host (dotnet test --blame-hang) does not kill the watchdog
/// with it and leave the VM running. It ignores SIGINT, SIGHUP and SIGTERM, which a terminal's
/// Ctrl-C or a CI runner's cancellation sends to the whole process group: it must outlive the
/// owner to act. Detached VMs get no watchdog.
/// </summary>
internal sealed class OwnerWatchdog : IDisposable
{
    // The hypervisor is identified by its pid file, which its command line names: a reused PID
    // that belongs to another process is never signalled.
    // The body runs in a background subshell and the outer shell exits: the subshell is
    // reparented to init. A background job's stdin is /dev/null, so the pipe goes in as fd 3.
    private const string Script = """
        exec 3<&0
        (
          trap '' INT HUP TERM
          pidfile=$1; shift
          while read -r _ <&3; do :; done
          # The VM's folder may have been deleted under it: then the hypervisor is found by the
          # pid file its command line names (this watchdog's arguments name it too: skipped).
          by_cmdline() {
            if [ -r /proc/self/cmdline ]; then
              for d in /proc/[0-9]*; do
                args=$(tr '\000' '\n' < "$d/cmdline" 2>/dev/null) || continue
                case "$args" in *linuxkit-testing-watchdog*) continue ;; esac
                if printf '%s\n' "$args" | grep -qxF -- "$pidfile"; then echo "${d#/proc/}"; return; fi
              done
            else
              ps -axo pid=,args= 2>/dev/null | grep -F -- "$pidfile" | grep -vF linuxkit-testing-watchdog | awk '{ print $1; exit }'
            fi
          }
          pid=$(cat "$pidfile" 2>/dev/null) || pid=$(by_cmdline)
          [ -n "$pid" ] || exit 0
          owned() {
            if [ -r "/proc/$pid/cmdline" ]; then tr '\000' '\n' < "/proc/$pid/cmdline" | grep -qxF -- "$pidfile"
            else ps -o args= -p "$pid" 2>/dev/null | grep -qF -- "$pidfile"; fi
          }
          if owned; then
            kill -TERM "$pid" 2>/dev/null
            i=0; while [ $i -lt 50 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i+1)); done
            owned && kill -KILL "$pid" 2>/dev/null
          fi
          rm -f -- "$@"
        ) </dev/null >/dev/null 2>&1 &
        """;

    private readonly Process _process;
    private int _disposed;

    private OwnerWatchdog(Process process) => _process = process;

    /// <summary>Starts a watchdog for the hypervisor that writes <paramref name="pidFile"/>.</summary>
    public static OwnerWatchdog Start(string pidFile, IEnumerable<string> filesToDelete)
    {
        var info = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(Script);
        info.ArgumentList.Add("linuxkit-testing-watchdog");
        info.ArgumentList.Add(pidFile);
        foreach (var file in filesToDelete) info.ArgumentList.Add(file);
        var process = Process.Start(info) ?? throw new LinuxKitException("Cannot start /bin/sh for the VM watchdog.");
        return new OwnerWatchdog(process);
    }

    /// <summary>Lets the watchdog act now: it stops the VM if it still runs, then exits.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        try { _process.StandardInput.Close(); } catch (IOException) { }
        _process.Dispose();
    }
}
