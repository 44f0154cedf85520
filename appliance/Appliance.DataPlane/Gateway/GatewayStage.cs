using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Gateway;

public enum GatewayDrop : ushort
{
}

/// <summary>Placeholder: passes every packet on. Issue 3 fills it in.</summary>
public sealed class GatewayStage() : PipelineStage("gateway", typeof(GatewayDrop))
{
    public override void Process(PacketBatch batch, WorkerContext context)
    {
    }
}
