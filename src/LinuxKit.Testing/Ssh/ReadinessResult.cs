namespace LinuxKit.Testing.Ssh;

/// <summary>How a readiness wait ended.</summary>
/// <param name="Value">What the successful handshake made; default when none succeeded.</param>
/// <param name="Banner">The server's banner, if one ever came.</param>
/// <param name="NetworkAnswered">True once the guest answered a connection at all.</param>
/// <param name="SilentConnection">True when the last connection was open and silent when the wait ended.</param>
/// <param name="Connections">How many connections the wait made.</param>
/// <param name="LastError">Why the last handshake that got a banner failed.</param>
internal sealed record ReadinessResult<T>(T? Value, string? Banner, bool NetworkAnswered, bool SilentConnection, int Connections, Exception? LastError);
