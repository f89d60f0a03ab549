using System.Diagnostics;
using System.Text;
using LinuxKit.Testing.Ssh;

namespace LinuxKit.Testing.Tests.Ssh;

/// <summary>What the resident shell is sent per command: the protocol its isolation and its speed rest on.</summary>
public sealed class ResidentShellScriptTests
{
    private static string Script(ShellCommand command, int sequence) => ResidentShell.Script(command, sequence, $"N{sequence}", "1025", out _);

    private static string Middle(int sequence) => $"__linuxkit_testing_N{sequence}_middle__";

    private static string End(int sequence, int status) => $"__linuxkit_testing_N{sequence}_end__ {status}\n";

    private static string Start(int sequence) => $"__linuxkit_testing_N{sequence}_start__\n";

    [Fact]
    public void Each_command_writes_files_of_its_own_so_a_late_background_writer_lands_in_no_later_result()
    {
        var script = Script(ShellCommand.Script("echo hi"), 7);

        Assert.Contains(">\"$LINUXKIT_OUT/o7\" 2>\"$LINUXKIT_OUT/e7\"", script, StringComparison.Ordinal);
        Assert.DoesNotContain("o8", script, StringComparison.Ordinal);
        Assert.StartsWith("( echo hi\n) </dev/null", script, StringComparison.Ordinal); // stdin never the shell's
    }

    [Fact]
    public void Only_builtins_that_can_neither_change_nor_end_the_shell_run_without_a_subshell()
    {
        Assert.True(ShellCommand.FromArguments(["true"]).InShell);
        Assert.True(ShellCommand.FromArguments(["echo", "a; exit 1"]).InShell);
        Assert.Equal("'echo' 'a; exit 1'", ShellCommand.FromArguments(["echo", "a; exit 1"]).Line);
        foreach (var program in new[] { "exit", "cd", "exec", "set", "export", "read", "eval", ".", ":", "printf", "trap", "ulimit", "umask", "wait", "sh", "/bin/true", "ls" })
            Assert.False(ShellCommand.FromArguments([program, "x"]).InShell, program);
        Assert.False(ShellCommand.Script("true").InShell);
    }

    [Fact]
    public void Only_the_first_builtin_of_a_shell_has_a_start_marker_of_its_own()
    {
        ResidentShell.Script(ShellCommand.FromArguments(["true"]), 1, "N1", "9", out var first);
        ResidentShell.Script(ShellCommand.FromArguments(["true"]), 2, "N2", "9", out var later);
        ResidentShell.Script(ShellCommand.Script("true"), 3, "N3", "9", out var subshell);

        Assert.True(first);
        Assert.False(later);
        Assert.True(subshell);
    }

    [Fact]
    public void Files_are_removed_every_64_commands()
    {
        Assert.DoesNotContain("rm -f", Script(ShellCommand.Script("true"), 63), StringComparison.Ordinal);
        Assert.EndsWith("rm -f \"$LINUXKIT_OUT\"/o* \"$LINUXKIT_OUT\"/e*\n", Script(ShellCommand.Script("true"), 64), StringComparison.Ordinal);
    }

    // The scripts as the guest's shell runs them, here in dash and in busybox's ash: every byte
    // the shell sends back is pinned.
    [Theory]
    [InlineData("/bin/sh")]
    [InlineData("/usr/bin/busybox")]
    public async Task A_real_shell_sends_each_result_framed_by_its_own_markers(string shell)
    {
        string[] commands =
        [
            Prologue(ShellCommand.FromArguments(["echo", "first"]), 1),
            Script(ShellCommand.FromArguments(["true"]), 2),
            Script(ShellCommand.FromArguments(["echo", "-n", "no newline"]), 3),
            Script(ShellCommand.FromArguments(["sh", "-c", "echo out; echo err >&2; exit 3"]), 4),
            Script(ShellCommand.FromArguments(["sh", "-c", "(sleep 0.3; echo late; echo late >&2) & echo started"]), 5),
            Script(ShellCommand.Script("sleep 0.6"), 6),
            Script(ShellCommand.FromArguments(["false"]), 7),
            Script(ShellCommand.FromArguments(["test", "a", "-zz", "b"]), 8),
            Script(ShellCommand.Script("exit 9"), 9),
            Script(ShellCommand.FromArguments(["echo", "alive"]), 10),
        ];

        var output = await RunAsync(shell, string.Concat(commands));

        var expected =
            Start(1) + "first\n" + Middle(1) + "\n" + End(1, 0) +
            Middle(2) + "\n" + End(2, 0) +
            "no newline" + Middle(3) + "\n" + End(3, 0) +
            Start(4) + "out\n" + Middle(4) + "\nerr\n" + End(4, 3) +
            Start(5) + "started\n" + Middle(5) + "\n" + End(5, 0) +
            Start(6) + Middle(6) + "\n" + End(6, 0) + // the late writer wrote meanwhile, into command 5's files
            Middle(7) + "\n" + End(7, 1);
        Assert.StartsWith(expected, output, StringComparison.Ordinal);
        var rest = output[expected.Length..];
        // test's complaint is its shell's own words; what matters is that it is framed as stderr.
        Assert.Matches($"^{Middle(8)}\n[^\n]+\n{End(8, 2)}{Start(9)}{Middle(9)}\n{End(9, 9)}alive\n{Middle(10)}\n{End(10, 0)}$", rest);
    }

    private static string Prologue(ShellCommand command, int sequence) => ResidentShell.Prologue + Script(command, sequence);

    private static async Task<string> RunAsync(string shell, string script)
    {
        var folder = Directory.CreateTempSubdirectory("lkt-shell-").FullName;
        try
        {
            var info = new ProcessStartInfo(shell) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
            if (shell.EndsWith("busybox", StringComparison.Ordinal)) info.ArgumentList.Add("sh");
            info.Environment["LINUXKIT_OUT"] = folder;
            using var sh = Process.Start(info)!;
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var output = sh.StandardOutput.ReadToEndAsync(timeout.Token);
            var error = sh.StandardError.ReadToEndAsync(timeout.Token);
            await sh.StandardInput.WriteAsync(new StringBuilder(script), timeout.Token);
            sh.StandardInput.Close();
            await sh.WaitForExitAsync(timeout.Token);
            Assert.Equal("", await error);
            return await output;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
