using System.Globalization;

namespace LinuxKit.Testing.Tool;

/// <summary>Rows printed in aligned columns, like `docker ps`.</summary>
internal static class Table
{
    public static void Write(TextWriter output, IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = rows.Prepend(header).ToList();
        var widths = header.Select((_, i) => all.Max(r => r[i].Length)).ToList();
        foreach (var row in all)
            output.WriteLine(string.Join("  ", row.Select((cell, i) => i == row.Count - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
    }

    /// <summary>"3 s", "4 min", "2 h", "5 d": how long ago, as `docker ps` says it.</summary>
    public static string Age(DateTimeOffset since, DateTimeOffset now)
    {
        var age = now - since;
        if (age < TimeSpan.Zero) age = TimeSpan.Zero;
        return age.TotalMinutes < 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalSeconds} s")
            : age.TotalHours < 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalMinutes} min")
            : age.TotalDays < 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalHours} h")
            : string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalDays} d");
    }

    /// <summary>Bytes as "512 KB", "137 MB", "1.2 GB".</summary>
    public static string Size(long bytes) =>
        bytes < 1024 * 1024 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024} KB")
        : bytes < 1024L * 1024 * 1024 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024 * 1024)} MB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024 * 1024):0.0} GB");
}
