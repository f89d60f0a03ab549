using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Tool;

/// <summary>
/// The manager's log as the tool shows it, on stderr (stdout is for results): on a terminal one
/// line that a spinner redraws with the latest step and the time so far; redirected, plain
/// timestamped lines. Warnings and errors always get a line of their own.
/// </summary>
internal sealed class ProgressLog : ILogger, IDisposable
{
    private static readonly string[] Frames = ["|", "/", "-", "\\"];
    private readonly TextWriter _out;
    private readonly bool _spinner;
    private readonly LogLevel _minimum;
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private readonly Timer? _timer;
    private readonly object _lock = new();
    private string _step = "";
    private int _frame;
    private bool _drawn;

    public ProgressLog(TextWriter output, bool spinner, bool verbose)
    {
        _out = output;
        _spinner = spinner;
        _minimum = verbose ? LogLevel.Debug : LogLevel.Information;
        if (_spinner) _timer = new Timer(_ => Redraw(), null, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(100));
    }

    /// <summary>Whether stderr is a terminal, where a spinner can redraw its line.</summary>
    public static bool IsTerminal => !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("TERM") is not (null or "dumb");

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= _minimum;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        var message = formatter(state, exception);
        lock (_lock)
        {
            if (_spinner && logLevel < LogLevel.Warning)
            {
                _step = message;
                Draw();
                return;
            }
            Clear();
            var level = logLevel >= LogLevel.Warning ? logLevel.ToString().ToLowerInvariant() + ": " : "";
            _out.WriteLine($"[{_clock.Elapsed.TotalSeconds,5:0.0} s] {level}{message}");
            if (_spinner) Draw();
        }
    }

    private void Redraw()
    {
        lock (_lock)
        {
            if (_step.Length == 0) return;
            _frame++;
            Draw();
        }
    }

    private void Draw()
    {
        var width = Math.Max(20, SafeWidth() - 1);
        var line = $"{Frames[_frame % Frames.Length]} {_clock.Elapsed.TotalSeconds,5:0.0} s  {_step}";
        if (line.Length > width) line = line[..(width - 1)] + "…";
        _out.Write("\r" + line.PadRight(width));
        _out.Flush();
        _drawn = true;
    }

    private void Clear()
    {
        if (!_drawn) return;
        _out.Write("\r" + new string(' ', Math.Max(20, SafeWidth() - 1)) + "\r");
        _drawn = false;
    }

    private static int SafeWidth()
    {
        try { return Console.WindowWidth > 0 ? Console.WindowWidth : 100; }
        catch (IOException) { return 100; }
    }

    /// <summary>Stops the spinner and clears its line.</summary>
    public void Dispose()
    {
        _timer?.Dispose();
        lock (_lock)
        {
            Clear();
            _step = "";
        }
    }
}
