using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Route;

public enum RouteDrop : ushort
{
}

/// <summary>Placeholder: passes every packet on. Issue 3 fills it in.</summary>
public sealed class RouteStage() : PipelineStage("route", typeof(RouteDrop))
{
    public override void Process(PacketBatch batch, WorkerContext context)
    {
    }
}
