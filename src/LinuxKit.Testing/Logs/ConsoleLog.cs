using System.Text;

namespace LinuxKit.Testing.Logs;

/// <summary>The VM's serial console, which the hypervisor appends to a file.</summary>
internal static class ConsoleLog
{
    public static FileStream Open(string path) =>
        new(path, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);

    /// <summary>The last lines of the console, for error messages.</summary>
    public static string Tail(string path, int lines = 40)
    {
        try
        {
            using var stream = Open(path);
            const int window = 16 * 1024;
            if (stream.Length > window) stream.Seek(-window, SeekOrigin.End);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            var text = reader.ReadToEnd().Replace("\r", "", StringComparison.Ordinal);
            var all = text.Split('\n');
            return string.Join('\n', all.TakeLast(lines)).TrimEnd();
        }
        catch (IOException)
        {
            return "";
        }
    }
}
