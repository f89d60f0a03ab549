using System.IO.Compression;
using System.Xml.Linq;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>Opens the packages packed from this tree and checks what each one carries.</summary>
[Trait("Category", "Integration")]
public class PackageContentsTests(LocalPackageFeed feed) : IClassFixture<LocalPackageFeed>
{
    public static TheoryData<string> Packages =>
        ["LinuxKit.Testing", "LinuxKit.Testing.Xunit", "LinuxKit.Testing.Xunit.V3", "LinuxKit.Testing.NUnit", "LinuxKit.Testing.MSBuild", "LinuxKit.Testing.Testcontainers", "LinuxKit.Testing.KubeVirt"];

    private List<string> Entries(string package)
    {
        using var zip = ZipFile.OpenRead(Path.Combine(feed.Path, $"{package}.{feed.Version}.nupkg"));
        return zip.Entries.Select(e => e.FullName)
            .Where(n => !n.StartsWith("_rels/", StringComparison.Ordinal) && !n.StartsWith("package/", StringComparison.Ordinal) && n != "[Content_Types].xml")
            .ToList();
    }

    private XElement Metadata(string package)
    {
        using var zip = ZipFile.OpenRead(Path.Combine(feed.Path, $"{package}.{feed.Version}.nupkg"));
        using var nuspec = zip.GetEntry($"{package}.nuspec")!.Open();
        var root = XDocument.Load(nuspec).Root!;
        return root.Elements().Single(e => e.Name.LocalName == "metadata");
    }

    [Theory]
    [MemberData(nameof(Packages))]
    public void Each_package_has_its_readme_license_description_and_a_symbol_package(string package)
    {
        var metadata = Metadata(package);
        string Field(string name) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value ?? "";

        Assert.Equal("README.md", Field("readme"));
        Assert.Contains("README.md", Entries(package));
        Assert.Equal("MIT", Field("license"));
        Assert.NotEmpty(Field("description"));
        Assert.True(File.Exists(Path.Combine(feed.Path, $"{package}.{feed.Version}.snupkg")), $"{package} has no symbol package");
        // Source Link names the commit (and the URL of the clone's "origin", where it has one).
        var repository = metadata.Elements().Single(e => e.Name.LocalName == "repository");
        Assert.Equal("git", repository.Attribute("type")?.Value);
        Assert.Matches("^[0-9a-f]{40}$", repository.Attribute("commit")?.Value ?? "");
    }

    [Theory]
    [InlineData("LinuxKit.Testing")]
    [InlineData("LinuxKit.Testing.Xunit")]
    [InlineData("LinuxKit.Testing.Xunit.V3")]
    [InlineData("LinuxKit.Testing.NUnit")]
    [InlineData("LinuxKit.Testing.MSTest")]
    [InlineData("LinuxKit.Testing.TUnit")]
    [InlineData("LinuxKit.Testing.Testcontainers")]
    public void A_library_package_holds_its_assembly_and_docs_for_net8_and_nothing_else(string package)
    {
        Assert.Equal(
            ["LinuxKit.Testing.nuspec".Replace("LinuxKit.Testing", package, StringComparison.Ordinal), "README.md", $"lib/net8.0/{package}.dll", $"lib/net8.0/{package}.xml"],
            Entries(package).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_kubevirt_package_holds_its_program_with_a_runtime_configuration_and_depends_on_the_core_and_the_kubernetes_client()
    {
        Assert.Equal(
            ["LinuxKit.Testing.KubeVirt.nuspec", "README.md", "lib/net8.0/LinuxKit.Testing.KubeVirt.dll", "lib/net8.0/LinuxKit.Testing.KubeVirt.runtimeconfig.json", "lib/net8.0/LinuxKit.Testing.KubeVirt.xml"],
            Entries("LinuxKit.Testing.KubeVirt").Order(StringComparer.Ordinal));
        var dependencies = Metadata("LinuxKit.Testing.KubeVirt").Descendants().Where(e => e.Name.LocalName == "dependency").Select(e => e.Attribute("id")!.Value);
        Assert.Equal(["KubernetesClient", "LinuxKit.Testing"], dependencies.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_task_package_carries_the_tasks_and_what_they_load_in_tasks_and_its_msbuild_files_in_build()
    {
        var entries = Entries("LinuxKit.Testing.MSBuild");

        Assert.Contains("build/LinuxKit.Testing.MSBuild.props", entries);
        Assert.Contains("build/LinuxKit.Testing.MSBuild.targets", entries);
        foreach (var assembly in new[] { "LinuxKit.Testing.MSBuild.dll", "LinuxKit.Testing.dll", "Renci.SshNet.dll", "Microsoft.Extensions.Logging.Abstractions.dll", "LinuxKit.Testing.KubeVirt.dll", "KubernetesClient.dll" })
            Assert.Contains($"tasks/net8.0/{assembly}", entries);
        // MSBuild brings its own: a second copy would clash with the one it loaded.
        Assert.DoesNotContain(entries, e => e.Contains("Microsoft.Build", StringComparison.Ordinal));
        Assert.DoesNotContain(entries, e => e.StartsWith("lib/", StringComparison.Ordinal));
        Assert.All(entries, e => Assert.True(
            e is "LinuxKit.Testing.MSBuild.nuspec" or "README.md" || e.StartsWith("build/", StringComparison.Ordinal) || e.StartsWith("tasks/net8.0/", StringComparison.Ordinal),
            $"stray file in the task package: {e}"));
        // A task package brings no package dependencies to the project that uses it.
        Assert.DoesNotContain(Metadata("LinuxKit.Testing.MSBuild").Elements(), e => e.Name.LocalName == "dependencies" && e.Descendants().Any(d => d.Name.LocalName == "dependency"));
    }
}
