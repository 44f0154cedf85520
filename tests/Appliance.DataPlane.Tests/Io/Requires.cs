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
}
