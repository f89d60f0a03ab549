using System.Globalization;
using System.Text;
using LinuxKit.Testing.Logs;

namespace LinuxKit.Testing.Testcontainers;

/// <summary>The serial console in the shape Docker's logs have, which Testcontainers' log helpers expect.</summary>
internal static class DockerLogs
{
    /// <summary>A <c>GetLogsAsync</c> bound as the console reader takes it: default means unbounded.</summary>
    public static DateTimeOffset? Bound(DateTime time) => time == default ? null : time.Kind switch
    {
        DateTimeKind.Local => new DateTimeOffset(time.ToUniversalTime(), TimeSpan.Zero),
        _ => new DateTimeOffset(DateTime.SpecifyKind(time, DateTimeKind.Utc), TimeSpan.Zero),
    };

    /// <summary>One line per console line, each after its RFC 3339 time when <paramref name="timestamps"/> (as <c>docker logs -t</c>).</summary>
    public static string Format(IEnumerable<ConsoleLine> lines, bool timestamps)
    {
        var text = new StringBuilder();
        foreach (var line in lines)
        {
            if (timestamps) text.Append(line.Time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture)).Append(' ');
            text.Append(line.Text).Append('\n');
        }
        return text.ToString();
    }
}
