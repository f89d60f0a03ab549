using System.Diagnostics;

namespace LinuxKit.Testing.Processes;

/// <summary>
/// Ties a hypervisor's life to this process, even when this process is killed with SIGKILL: a
/// small shell reads a pipe that only this process holds open, and when the kernel closes it
/// (exit, crash, kill) the shell terminates the hypervisor and deletes what it leaves (a VM's
/// disk overlay, a template's staging folder). The shell leaves this process's tree at once
/// (its parent exits), so that a runner that kills the whole tree of a hung test host (dotnet
/// test --blame-hang) does not kill it too, and its session and process group (setsid), so that
/// a signal to the owner's process group (Ctrl-C, a CI runner's cancellation, `kill -9 -- -PGID`)
/// does not reach it either; it ignores SIGINT, SIGHUP and SIGTERM all the same. A detached VM
/// has one while it boots, released once it runs: from then on it outlives its owner.
/// </summary>
internal sealed class OwnerWatchdog : IDisposable
{
    // The hypervisor is identified by its pid file, which its command line names: a reused PID
    // that belongs to another process is never signalled.
    private const string Body = """
        trap '' INT HUP TERM
        pidfile=$1; grace=$2; shift 2
        # "release": leave the hypervisor be; "stop": the owner asks, and cleans up what it
        # stopped itself; end of input without either: the owner died, and nobody else will
        # remove its files, whether a hypervisor is found or not.
        owner=dead
        while read -r line <&3; do
          case "$line" in release) exit 0 ;; stop) owner=alive ;; esac
        done
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
        owned() {
          if [ -r "/proc/$1/cmdline" ]; then tr '\000' '\n' < "/proc/$1/cmdline" | grep -qxF -- "$pidfile"
          else ps -o args= -p "$1" 2>/dev/null | grep -qF -- "$pidfile"; fi
        }
        # Until no process has named the pid file for two looks half a second apart: a
        # hypervisor that was still starting (QEMU's parent before -daemonize forks) can leave
        # its daemon behind the first one found.
        found=0; missed=0
        while [ $found -lt 10 ] && [ $missed -lt 2 ]; do
          pid=$(cat "$pidfile" 2>/dev/null)
          { [ -n "$pid" ] && owned "$pid"; } || pid=$(by_cmdline)
          if [ -z "$pid" ]; then missed=$((missed+1)); sleep 0.5; continue; fi
          missed=0; found=$((found+1))
          kill -TERM "$pid" 2>/dev/null
          i=0; while [ $i -lt "$grace" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i+1)); done
          owned "$pid" && kill -KILL "$pid" 2>/dev/null
          sleep 0.1
        done
        [ $found -gt 0 ] || [ $owner = dead ] || exit 0
        rm -rf -- "$@"
        """;

    // The body runs in the background in a session of its own (setsid from util-linux, else
    // perl's POSIX::setsid, which macOS has) and the outer shell exits: the body is reparented
    // to init. A background job's stdin is /dev/null, so the pipe goes in as fd 3.
    private const string Launcher = """
        exec 3<&0
        body=$1; shift
        if command -v setsid >/dev/null 2>&1; then
          setsid /bin/sh -c "$body" linuxkit-testing-watchdog "$@" </dev/null >/dev/null 2>&1 &
        else
          perl -MPOSIX -e 'POSIX::setsid(); exec @ARGV' /bin/sh -c "$body" linuxkit-testing-watchdog "$@" </dev/null >/dev/null 2>&1 &
        fi
        """;

    private readonly Process _process;
    private int _disposed;

    private OwnerWatchdog(Process process) => _process = process;

    /// <summary>Starts a watchdog for the hypervisor that writes <paramref name="pidFile"/>.</summary>
    /// <param name="pidFile">The hypervisor's pid file, which its command line names.</param>
    /// <param name="filesToDelete">Files and folders to delete once the hypervisor is stopped.</param>
    /// <param name="grace">How long the hypervisor has between SIGTERM and SIGKILL (5 s when not given): a KubeVirt bridge deletes its VMI then.</param>
    public static OwnerWatchdog Start(string pidFile, IEnumerable<string> filesToDelete, TimeSpan? grace = null)
    {
        var info = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(Launcher);
        info.ArgumentList.Add("linuxkit-testing-watchdog");
        info.ArgumentList.Add(Body);
        info.ArgumentList.Add(pidFile);
        info.ArgumentList.Add(((int)Math.Ceiling((grace ?? TimeSpan.FromSeconds(5)).TotalSeconds * 10)).ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var file in filesToDelete) info.ArgumentList.Add(file);
        var process = Process.Start(info) ?? throw new LinuxKitException("Cannot start /bin/sh for the VM watchdog.");
        return new OwnerWatchdog(process);
    }

    /// <summary>Ends the watchdog without it acting: the hypervisor is left running (a detached VM that finished booting).</summary>
    public void Release() => End("release");

    /// <summary>Lets the watchdog act now: it stops the VM if it still runs, then exits.</summary>
    public void Dispose() => End("stop");

    private void End(string word)
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        try
        {
            _process.StandardInput.WriteLine(word);
            _process.StandardInput.Close();
        }
        catch (IOException)
        {
        }
        _process.Dispose();
    }
}
