using System.CommandLine;

namespace LinuxKit.Testing.Tool;

/// <summary>templates and templates rm: the warm-start templates of the state directory.</summary>
internal static class TemplateCommands
{
    public static IEnumerable<Command> All(ToolContext context)
    {
        var command = new Command("templates", "List the warm-start templates, with their size on disk.");
        command.SetAction((parsed, token) => ToolContext.GuardAsync(async () =>
        {
            await using var manager = context.Manager(parsed);
            var now = DateTimeOffset.UtcNow;
            Table.Write(Console.Out, ["KEY", "IMAGE", "MEMORY", "CPUS", "SIZE", "CREATED", "LAST USED"],
                (await manager.ListTemplatesAsync(token)).Select(t => (IReadOnlyList<string>)
                [
                    t.Key, t.Image, $"{t.Memory} MB", $"{t.Cpus}", Table.Size(t.SizeOnDisk), Table.Age(t.CreatedAt, now) + " ago", Table.Age(t.LastUsedAt, now) + " ago",
                ]));
            return ExitCodes.Ok;
        }, token));

        var keys = new Argument<string[]>("key") { Description = "Template keys (from 'linuxkit-testing templates').", Arity = ArgumentArity.OneOrMore };
        var remove = new Command("rm", "Remove warm-start templates; VMs restored from them run on.") { keys };
        remove.SetAction((parsed, token) => ToolContext.GuardAsync(async () =>
        {
            await using var manager = context.Manager(parsed);
            foreach (var key in parsed.GetValue(keys)!)
            {
                await manager.RemoveTemplateAsync(key, token);
                Console.WriteLine(key);
            }
            return ExitCodes.Ok;
        }, token));
        command.Subcommands.Add(remove);
        return [command];
    }
}
