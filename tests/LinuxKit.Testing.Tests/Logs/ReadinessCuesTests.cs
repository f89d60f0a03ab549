using LinuxKit.Testing.Logs;

namespace LinuxKit.Testing.Tests.Logs;

public sealed class ReadinessCuesTests
{
    [Theory]
    [InlineData("Server listening on 0.0.0.0 port 22.")]
    [InlineData("[123] Dec 04 03:17:38 Not backgrounding")]
    [InlineData("[    4.876991] IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready")]
    [InlineData("udhcpc: lease of 10.0.2.15 obtained, lease time 86400")]
    [InlineData("eth0: leased 10.0.2.15 for 86400 seconds")]
    public void The_console_lines_of_a_network_or_an_ssh_server_coming_up_are_cues(string line)
    {
        Assert.Equal(0, ReadinessCues.CountIn("Welcome to LinuxKit\n"));
        Assert.Equal(1, ReadinessCues.CountIn($"Welcome to LinuxKit\n{line}\n"));
    }

    [Fact]
    public void Every_cue_line_counts_so_that_a_second_server_start_is_a_change()
    {
        Assert.Equal(2, ReadinessCues.CountIn("Server listening on 0.0.0.0 port 22.\nServer listening on :: port 22.\nlinuxkit-test: httpd serving on port 80\n"));
    }
}
