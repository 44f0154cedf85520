using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Firewall;

public enum ConntrackDrop : ushort
{
}

/// <summary>Placeholder: passes every packet on. Issue 3 fills it in.</summary>
public sealed class ConntrackStage() : PipelineStage("conntrack", typeof(ConntrackDrop))
{
    public override void Process(PacketBatch batch, WorkerContext context)
    {
    }
}
