using LinuxKit.Testing.Ssh;

namespace LinuxKit.Testing.Tests.Ssh;

/// <summary>What the resident shell is sent per command: the protocol its isolation rests on.</summary>
public sealed class ResidentShellScriptTests
{
    private static string Script(int sequence) => ResidentShell.Script("echo hi", sequence, "__S__", "__E__", "1025");

    [Fact]
    public void Each_command_writes_files_of_its_own_so_a_late_background_writer_lands_in_no_later_result()
    {
        Assert.Contains(">\"$LINUXKIT_OUT/o7\" 2>\"$LINUXKIT_OUT/e7\"", Script(7), StringComparison.Ordinal);
        Assert.DoesNotContain("o8", Script(7), StringComparison.Ordinal);
    }

    [Fact]
    public void Output_is_sent_between_the_markers_through_head_bounded_by_the_limit_and_only_when_there_is_some()
    {
        var script = Script(1);

        Assert.Contains("if [ -s \"$LINUXKIT_OUT/o1\" ]; then printf '%s\\n' __S__; head -c 1025 \"$LINUXKIT_OUT/o1\"; printf '%s %d\\n' __E__ $s;", script, StringComparison.Ordinal);
        Assert.Contains("else printf '%s\\n%s %d\\n' __S__ __E__ $s; fi", script, StringComparison.Ordinal);
        Assert.Contains("head -c 1025 \"$LINUXKIT_OUT/e1\" >&2", script, StringComparison.Ordinal);
        Assert.StartsWith("( echo hi\n) </dev/null", script, StringComparison.Ordinal); // stdin never the shell's
    }

    [Fact]
    public void Read_files_are_emptied_at_once_and_the_files_are_removed_every_64_commands()
    {
        Assert.Contains(": >\"$LINUXKIT_OUT/o3\"", Script(3), StringComparison.Ordinal);
        Assert.DoesNotContain("rm -f", Script(63), StringComparison.Ordinal);
        Assert.EndsWith("rm -f \"$LINUXKIT_OUT\"/o* \"$LINUXKIT_OUT\"/e*\n", Script(64), StringComparison.Ordinal);
    }
}
