namespace LinuxKit.Testing;

/// <summary>The one test of "running or starting": a VM whose hypervisor may be alive.</summary>
internal static class ContainerStatusLiveness
{
    /// <summary>True for <see cref="ContainerStatus.Running"/> and <see cref="ContainerStatus.Starting"/>.</summary>
    public static bool IsLive(this ContainerStatus status) => status is ContainerStatus.Running or ContainerStatus.Starting;
}
