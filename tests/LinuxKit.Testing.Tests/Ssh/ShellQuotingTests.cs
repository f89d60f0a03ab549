using LinuxKit.Testing.Ssh;

namespace LinuxKit.Testing.Tests.Ssh;

public class ShellQuotingTests
{
    [Theory]
    [InlineData("uname", "uname")]
    [InlineData("-a", "-a")]
    [InlineData("/usr/bin/x=1,y:2@h%+", "/usr/bin/x=1,y:2@h%+")]
    [InlineData("a b; rm -rf /", "'a b; rm -rf /'")]
    [InlineData("it's", "'it'\\''s'")]
    [InlineData("", "''")]
    [InlineData("$HOME `id` \"q\" *", "'$HOME `id` \"q\" *'")]
    [InlineData("line\nbreak", "'line\nbreak'")]
    public void Arguments_are_quoted_for_a_posix_shell(string argument, string expected) =>
        Assert.Equal(expected, ShellQuoting.Quote(argument));

    [Fact]
    public void Arguments_are_joined_with_spaces() =>
        Assert.Equal("'echo' 'a b; rm -rf /'", ShellQuoting.Join(["echo", "a b; rm -rf /"]));

    [Theory]
    [InlineData("done")]
    [InlineData("fi")]
    [InlineData("X=1")]
    [InlineData("{")]
    public void A_program_named_like_shell_syntax_is_looked_up_as_a_program(string program)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("/bin/sh") { RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(ShellQuoting.Join([program]) + "; echo $? >&2");
        using var sh = System.Diagnostics.Process.Start(psi)!;
        var error = sh.StandardError.ReadToEnd();
        sh.WaitForExit();
        Assert.EndsWith("127\n", error, StringComparison.Ordinal); // not found, and the shell went on
        Assert.Equal(0, sh.ExitCode);
    }

    [Fact]
    public void Empty_command_is_refused() =>
        Assert.Throws<LinuxKitException>(() => ShellQuoting.Join([]));

    [Fact]
    public void Quoted_arguments_reach_sh_unchanged()
    {
        string[] args = ["printf", "%s|", "a b", "it's", "$HOME", "`id`", "; rm -rf /", ""];
        var psi = new System.Diagnostics.ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(ShellQuoting.Join(args));
        using var sh = System.Diagnostics.Process.Start(psi)!;
        var output = sh.StandardOutput.ReadToEnd();
        sh.WaitForExit();
        Assert.Equal("a b|it's|$HOME|`id`|; rm -rf /||", output);
    }
}
