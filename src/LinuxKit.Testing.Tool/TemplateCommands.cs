using System.CommandLine;

namespace LinuxKit.Testing.Tool;

/// <summary>templates and templates rm: the warm-start templates of the state directory.</summary>
internal static class TemplateCommands
{
    public static IEnumerable<Command> All(ToolContext context)
    {
        var command = new Command("templates", "List the warm-start templates, with their size on disk, and the keys on which warm start failed (their VMs boot cold), with why.");
        command.SetAction((parsed, token) => ToolContext.GuardAsync(async () =>
        {
            await using var manager = context.Manager(parsed);
            var now = DateTimeOffset.UtcNow;
            var templates = await manager.ListTemplatesAsync(token);
            Table.Write(Console.Out, ["KEY", "STATUS", "IMAGE", "MEMORY", "CPUS", "SIZE", "CREATED", "LAST USED"],
                templates.Select(t => (IReadOnlyList<string>)
                [
                    t.Key, (t.FailureReason is null ? "ready" : "failed") + (t.ForeignHost is { } where ? $" ({where})" : ""), t.Image, $"{t.Memory} MB", $"{t.Cpus}", Table.Size(t.SizeOnDisk),
                    Table.Age(t.CreatedAt, now) + " ago", Table.Age(t.LastUsedAt, now) + " ago",
                ]));
            foreach (var failed in templates.Where(t => t.FailureReason is not null))
                Console.WriteLine($"{failed.Key} failed: {failed.FailureReason} ('linuxkit-testing templates rm {failed.Key}' tries again)");
            return ExitCodes.Ok;
        }, token));

        var keys = new Argument<string[]>("key") { Description = "Template keys (from 'linuxkit-testing templates').", Arity = ArgumentArity.OneOrMore };
        var force = new Option<bool>("--force", "-f") { Description = "Also remove templates made on another machine or PID namespace." };
        var remove = new Command("rm", "Remove warm-start templates; VMs restored from them run on.") { keys, force };
        remove.SetAction((parsed, token) => ToolContext.GuardAsync(async () =>
        {
            await using var manager = context.Manager(parsed);
            foreach (var key in parsed.GetValue(keys)!)
            {
                await manager.RemoveTemplateAsync(key, parsed.GetValue(force), token);
                Console.WriteLine(key);
            }
            return ExitCodes.Ok;
        }, token));
        command.Subcommands.Add(remove);
        return [command];
    }
}
