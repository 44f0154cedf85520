using System.Net;

namespace Isthmus.ControlPlane.Mobility;

/// <summary>A virtual server address and whether its pool can serve (at least one healthy backend).</summary>
public sealed record VipStatus(IPAddress Address, bool Up);

/// <summary>
/// The seam between the load balancer (issue 5) and mobility: which VIPs exist and whether each one's pool
/// is up. Mobility announces a VIP's /32 only while it is up and withdraws it when it goes down; after the
/// appliance's own migration it GARPs every VIP. The load balancer registers its implementation; until
/// then <see cref="NoVips"/> stands in.
/// </summary>
public interface IVipHealth
{
    IReadOnlyList<VipStatus> Vips { get; }

    /// <summary>Raised (on any thread) when a VIP is added, removed, or goes up or down.</summary>
    event Action? Changed;
}

/// <summary>No load balancer: no VIPs.</summary>
public sealed class NoVips : IVipHealth
{
    public IReadOnlyList<VipStatus> Vips => [];

    public event Action? Changed
    {
        add { }
        remove { }
    }
}

/// <summary>A settable <see cref="IVipHealth"/> (tests, and any component that tracks VIPs itself).</summary>
public sealed class VipHealthBoard : IVipHealth
{
    private volatile IReadOnlyList<VipStatus> _vips = [];

    public IReadOnlyList<VipStatus> Vips => _vips;

    public event Action? Changed;

    public void Set(IReadOnlyList<VipStatus> vips)
    {
        _vips = [.. vips];
        Changed?.Invoke();
    }
}
