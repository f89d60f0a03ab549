namespace LinuxKit.Testing.Logs;

/// <summary>One line of a VM's serial console and when it was written.</summary>
/// <param name="Time">When the line's first byte was seen in the console log.</param>
/// <param name="Text">The line, without its line break.</param>
public sealed record ConsoleLine(DateTimeOffset Time, string Text);
