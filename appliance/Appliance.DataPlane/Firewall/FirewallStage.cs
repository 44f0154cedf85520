using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Firewall;

public enum FirewallDrop : ushort
{
}

/// <summary>Placeholder: passes every packet on. Issue 3 fills it in.</summary>
public sealed class FirewallStage() : PipelineStage("firewall", typeof(FirewallDrop))
{
    public override void Process(PacketBatch batch, WorkerContext context)
    {
    }
}
