using System.ComponentModel;
using System.Diagnostics;

namespace LinuxKit.Testing.Processes;

/// <summary>Runs short-lived host programs (qemu-img, a daemonizing QEMU) with a timeout.</summary>
internal static class ProcessRunner
{
    public static async Task<ProcessOutcome> RunAsync(
        string fileName, IEnumerable<string> arguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // Through a shell that sets umask 077: what these programs create (QEMU's console and
        // log files, qemu-img's overlays) is the user's alone, like the rest of the state.
        var info = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["-c", "umask 077 && exec \"$0\" \"$@\"", fileName, .. arguments]) info.ArgumentList.Add(argument);

        using var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            throw new LinuxKitException($"Cannot start '{fileName}': {e.Message}.", e);
        }
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);

        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(timeoutSource.Token).ConfigureAwait(false);
            var outcome = new ProcessOutcome(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
            // 126/127: the shell could not run the program at all.
            if (outcome.ExitCode is 126 or 127 && FindOnPath(fileName) is null)
                throw new LinuxKitException($"Cannot start '{fileName}': {outcome.Stderr.Trim()}.");
            return outcome;
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            cancellationToken.ThrowIfCancellationRequested();
            throw new LinuxKitException($"'{fileName}' did not finish within {timeout.TotalSeconds:0} s and was killed.");
        }
    }

    /// <summary>Finds a program on PATH; null when it is not there.</summary>
    public static string? FindOnPath(string name)
    {
        if (Path.IsPathRooted(name)) return File.Exists(name) ? name : null;
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }
}
