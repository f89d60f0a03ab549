using System.Collections;
using Microsoft.Build.Framework;

namespace LinuxKit.Testing.TestSupport;

/// <summary>
/// An MSBuild engine for running tasks in a test: it records what they log, and keeps the objects
/// tasks register for the build's lifetime until <see cref="EndBuild"/>, as MSBuild does.
/// </summary>
internal sealed class RecordingBuildEngine : IBuildEngine4
{
    private readonly object _gate = new();
    private readonly Dictionary<object, object> _buildObjects = [];

    public List<BuildErrorEventArgs> Errors { get; } = [];
    public List<BuildWarningEventArgs> Warnings { get; } = [];
    public List<BuildMessageEventArgs> Messages { get; } = [];
    public bool ContinueOnError => false;
    public int LineNumberOfTaskNode => 0;
    public int ColumnNumberOfTaskNode => 0;
    public string ProjectFileOfTaskNode => "test.proj";
    public bool IsRunningMultipleNodes => false;
    public bool BuildProjectFile(string projectFileName, string[] targetNames, IDictionary globalProperties, IDictionary targetOutputs) => true;
    public bool BuildProjectFile(string projectFileName, string[] targetNames, IDictionary globalProperties, IDictionary targetOutputs, string toolsVersion) => true;
    public bool BuildProjectFilesInParallel(string[] projectFileNames, string[] targetNames, IDictionary[] globalProperties, IDictionary[] targetOutputsPerProject, string[] toolsVersion, bool useResultsCache, bool unloadProjectsOnCompletion) => true;
    public BuildEngineResult BuildProjectFilesInParallel(string[] projectFileNames, string[] targetNames, IDictionary[] globalProperties, IList<string>[] removeGlobalProperties, string[] toolsVersion, bool returnTargetOutputs) => new(true, []);
    public void Yield() { }
    public void Reacquire() { }
    public void LogCustomEvent(CustomBuildEventArgs e) { }
    public void LogErrorEvent(BuildErrorEventArgs e) { lock (_gate) Errors.Add(e); }
    public void LogMessageEvent(BuildMessageEventArgs e) { lock (_gate) Messages.Add(e); }
    public void LogWarningEvent(BuildWarningEventArgs e) { lock (_gate) Warnings.Add(e); }

    public void RegisterTaskObject(object key, object obj, RegisteredTaskObjectLifetime lifetime, bool allowEarlyCollection)
    {
        lock (_gate) _buildObjects[key] = obj;
    }

    public object? GetRegisteredTaskObject(object key, RegisteredTaskObjectLifetime lifetime)
    {
        lock (_gate) return _buildObjects.GetValueOrDefault(key);
    }

    public object? UnregisterTaskObject(object key, RegisteredTaskObjectLifetime lifetime)
    {
        lock (_gate) return _buildObjects.Remove(key, out var obj) ? obj : null;
    }

    /// <summary>Ends the build: disposes what tasks registered, as MSBuild does.</summary>
    public void EndBuild()
    {
        List<object> objects;
        lock (_gate)
        {
            objects = [.. _buildObjects.Values];
            _buildObjects.Clear();
        }
        foreach (var obj in objects) (obj as IDisposable)?.Dispose();
    }
}
