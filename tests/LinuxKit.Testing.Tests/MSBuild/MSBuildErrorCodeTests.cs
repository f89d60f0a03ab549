using System.Collections;
using System.Globalization;
using System.Resources;
using System.Text.RegularExpressions;
using LinuxKit.Testing.MSBuild;

namespace LinuxKit.Testing.Tests.MSBuild;

/// <summary>The tasks' messages: each starts with its code, and the README documents every code.</summary>
public partial class MSBuildErrorCodeTests
{
    private static readonly string Repo = FindRepo();

    private static string FindRepo()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "LinuxKit.Testing.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    private static Dictionary<string, string> Messages()
    {
        var resources = new ResourceManager("LinuxKit.Testing.MSBuild.Strings", typeof(LinuxKitTask).Assembly);
        var set = resources.GetResourceSet(CultureInfo.InvariantCulture, createIfNotExists: true, tryParents: true)
            ?? throw new InvalidOperationException("no resources");
        return set.Cast<DictionaryEntry>().ToDictionary(e => (string)e.Key, e => (string)e.Value!);
    }

    [GeneratedRegex(@"^(LKT\d{3}): ")]
    private static partial Regex CodePrefix();

    [Fact]
    public void Every_task_message_starts_with_its_code()
    {
        var messages = Messages();
        Assert.NotEmpty(messages);
        Assert.All(messages, m => Assert.Matches(CodePrefix(), m.Value));
    }

    [Fact]
    public void The_readme_table_lists_every_code_the_tasks_and_targets_use()
    {
        var codes = Messages().Values.Select(m => CodePrefix().Match(m).Groups[1].Value)
            .Concat(Regex.Matches(File.ReadAllText(Path.Combine(Repo, "src", "LinuxKit.Testing.MSBuild", "build", "LinuxKit.Testing.MSBuild.targets")), @"Code=""(LKT\d{3})""").Select(m => m.Groups[1].Value))
            .Distinct();
        var readme = File.ReadAllText(Path.Combine(Repo, "README.md"));
        Assert.All(codes, code => Assert.Contains($"| {code} |", readme, StringComparison.Ordinal));
    }
}
