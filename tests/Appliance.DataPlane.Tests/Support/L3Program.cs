using Isthmus.DataPlane.Programming;

namespace Isthmus.DataPlane.Tests.Support;

/// <summary>
/// The lab topology with the appliance as router: gateway 10.10.0.1/24 + fd00:10::1/64 on bd10,
/// 10.20.0.1/24 + fd00:20::1/64 on bd20, and a default route via 10.20.0.254 (the "upstream" router).
/// </summary>
public static class L3Program
{
    public const string Gw10Mac = "02:15:7e:00:00:10";
    public const string Gw20Mac = "02:15:7e:00:00:20";

    public static GatewaySpec Gateway10 { get; } = new()
    {
        Domain = "bd10",
        Mac = Gw10Mac,
        Addresses = ["10.10.0.1/24", "fd00:10::1/64"],
    };

    public static GatewaySpec Gateway20 { get; } = new()
    {
        Domain = "bd20",
        Mac = Gw20Mac,
        Addresses = ["10.20.0.1/24", "fd00:20::1/64"],
    };

    public static DataPlaneProgram Create(
        Func<GatewaySpec, GatewaySpec>? tweak10 = null,
        Func<GatewaySpec, GatewaySpec>? tweak20 = null,
        IReadOnlyList<RouteSpec>? routes = null) =>
        L2Fixture.LabProgram() with
        {
            Gateways = [(tweak10 ?? (g => g))(Gateway10), (tweak20 ?? (g => g))(Gateway20)],
            Routes = routes ??
            [
                new RouteSpec { Prefix = "0.0.0.0/0", NextHop = "10.20.0.254" },
                new RouteSpec { Prefix = "::/0", NextHop = "fd00:20::fe" },
            ],
        };
}
