using Isthmus.DataPlane.Io.Native;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>
/// Environment checks for tests that need real kernel networking. In CI (CI=true) a missing
/// prerequisite fails the test; on a developer machine the test returns early.
/// </summary>
internal static class Requires
{
    /// <summary>True when the test can run: root and the <c>ip</c> tool (iproute2) are present.</summary>
    public static bool RootAndNetns()
    {
        string? reason = null;
        if (!OperatingSystem.IsLinux())
        {
            reason = "needs Linux";
        }
        else if (Libc.GetEUid() != 0)
        {
            reason = "needs root (network namespaces, AF_PACKET)";
        }
        else if (Ip.Path is null)
        {
            reason = "needs iproute2 ('ip' not found)";
        }

        if (reason is null)
        {
            return true;
        }

        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"Prerequisite missing in CI: {reason}.");
        }

        return false;
    }

    /// <summary>True when <paramref name="tool"/> is on the PATH; false (a failure when CI=true) when it is missing.</summary>
    public static bool Tool(string tool)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin";
        if (path.Split(':').Any(dir => dir.Length > 0 && File.Exists(System.IO.Path.Combine(dir, tool))))
        {
            return true;
        }

        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"Prerequisite missing in CI: {tool} (lab.sh installs it).");
        }

        return false;
    }
}
