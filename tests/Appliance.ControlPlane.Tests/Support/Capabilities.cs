using System.Globalization;

namespace Isthmus.ControlPlane.Tests.Support;

/// <summary>The capabilities the scheduling tests need, read from the process's effective set.</summary>
public static class Capabilities
{
    /// <summary>CAP_SYS_NICE (bit 23) in the effective set of /proc/self/status (the main thread's).</summary>
    public static bool HasSysNice()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        var caps = ulong.Parse(line["CapEff:".Length..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return (caps & (1UL << 23)) != 0;
    }
}
