using System.CommandLine;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Tool;

// linuxkit-testing: the VMs and warm-start templates of a LinuxKit.Testing state directory,
// seen and handled from a shell. Every command is a thin call into the core (LinuxKitManager,
// LinuxKitDoctor); this file only wires the command line.
var stateDir = new Option<string?>("--state-dir")
{
    Description = "The state directory (default: LINUXKIT_TESTING_HOME, else ~/.local/state/linuxkit-testing).",
    Recursive = true,
};
var verbose = new Option<bool>("--verbose", "-v") { Description = "Show the manager's debug log.", Recursive = true };
var hypervisor = new Option<HypervisorKind>("--hypervisor")
{
    Description = "Which hypervisor boots VMs: auto, qemu, hyperkit or kubevirt (default: LINUXKIT_TESTING_HYPERVISOR, else auto). A VM is always stopped by the one it was started under.",
    Recursive = true,
    DefaultValueFactory = _ => HypervisorKind.Auto,
};
var root = new RootCommand("Lists, inspects, uses, stops and cleans up LinuxKit.Testing VMs and warm-start templates.");
root.Options.Add(stateDir);
root.Options.Add(verbose);
root.Options.Add(hypervisor);
var context = new ToolContext(stateDir, verbose, hypervisor);
foreach (var command in VmCommands.All(context).Concat(TemplateCommands.All(context)).Append(DoctorCommand.Create(context)))
    root.Subcommands.Add(command);

var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors) Console.Error.WriteLine($"linuxkit-testing: {error.Message}");
    Console.Error.WriteLine("Run 'linuxkit-testing --help' for the commands and their options.");
    return ExitCodes.Usage;
}
return await parsed.InvokeAsync();
