using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Support;

namespace Isthmus.DataPlane.Tests.Programming;

public class SnapshotCompilerTests
{
    [Fact]
    public void The_lab_program_compiles()
    {
        Assert.Empty(SnapshotCompiler.Validate(L2Fixture.LabProgram()));
    }

    [Fact]
    public void Every_error_is_reported_at_once_with_its_path()
    {
        var program = L2Fixture.LabProgram() with
        {
            BridgeDomains =
            [
                new BridgeDomainSpec
                {
                    Name = "bd10",
                    MacAgingSeconds = 0,
                    Segments =
                    [
                        new SegmentSpec { Port = "acc10", Vlan = 10 },
                        new SegmentSpec { Port = "trunk0", Vlan = 4095 },
                        new SegmentSpec { Port = "und0", Vni = 5010, Vteps = ["192.0.2.2", "not-an-ip"] },
                        new SegmentSpec { Port = "nowhere" },
                    ],
                },
                new BridgeDomainSpec
                {
                    Name = "bd10",
                    Segments = [new SegmentSpec { Port = "und0", Vni = 5010 }],
                    StaticMacs = [new StaticMacSpec("01:00:5e:00:00:01", 3)],
                },
            ],
        };

        var errors = SnapshotCompiler.Validate(program).Select(e => e.Path).ToList();

        Assert.Equal(
            [
                "bridgeDomains[0].macAgingSeconds",
                "bridgeDomains[0].segments[0]",
                "bridgeDomains[0].segments[1].vlan",
                "bridgeDomains[0].segments[2].vteps[1]",
                "bridgeDomains[0].segments[3].port",
                "bridgeDomains[1].name",
                "bridgeDomains[1].segments[0].vni",
                "bridgeDomains[1].staticMacs[0].mac",
                "bridgeDomains[1].staticMacs[0].segment",
            ],
            errors);
    }

    [Fact]
    public void Ports_need_what_their_kind_needs()
    {
        var program = new DataPlaneProgram
        {
            Ports =
            [
                new PortSpec("und0", PortSpecKind.Vxlan, UdpPort: 0),
                new PortSpec("und0", PortSpecKind.Trunk),
            ],
        };

        var errors = SnapshotCompiler.Validate(program);

        Assert.Equal(["ports[0].localAddress", "ports[0].udpPort", "ports[1].name", "ports[1].interface"], errors.Select(e => e.Path));
        Assert.Throws<ProgramValidationException>(() => SnapshotCompiler.Compile(program, 1, 1));
    }
}
