using System.Text;
using LinuxKit.Testing.Logs;

namespace LinuxKit.Testing.Tests.Logs;

public class TerminalTextTests
{
    [Theory]
    [InlineData("Welcome to LinuxKit\n\tok\r\n", "Welcome to LinuxKit\n\tok\r\n")]
    [InlineData("\u001b]0;owned\u0007title", "\\x1b]0;owned\\x07title")]      // a window title set by the guest
    [InlineData("\u001b[2J\u001b[Hclear", "\\x1b[2J\\x1b[Hclear")]           // screen cleared, cursor moved
    [InlineData("done\rfake line\n", "done\\x0dfake line\n")]                  // a line rewritten in place
    [InlineData("del\u007f", "del\\x7f")]
    [InlineData("grüße", "grüße")]
    public void Control_characters_are_shown_escaped_and_text_is_kept(string console, string shown) =>
        Assert.Equal(shown, Encoding.UTF8.GetString(TerminalText.Escape(Encoding.UTF8.GetBytes(console))));
}
