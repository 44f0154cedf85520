using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Config;

namespace Isthmus.ControlPlane.Tests.Support;

/// <summary>Configuration documents the tests commit: the lab's shape on in-memory ports.</summary>
public static class Documents
{
    public const string AdminPassword = "correct horse battery staple";
    public const string AdminToken = "ist_test-admin-token-0123456789abcdef";
    public const string ReaderToken = "ist_test-reader-token-0123456789abcdef";

    public static readonly string AdminHash = Credentials.HashPassword("admin", AdminPassword);

    /// <summary>bd10 = acc10 + trunk0 VLAN 10 + VNI 5010; the optional extra domain grows the program.</summary>
    public static JsonObject Lab(int vlan = 10, int extraDomains = 0, bool credentials = true)
    {
        var domains = new JsonArray
        {
            new JsonObject
            {
                ["name"] = "bd10",
                ["segments"] = new JsonArray
                {
                    new JsonObject { ["port"] = "acc10" },
                    new JsonObject { ["port"] = "trunk0", ["vlan"] = vlan },
                    new JsonObject { ["port"] = "und0", ["vni"] = 5010, ["vteps"] = new JsonArray("192.0.2.2"), ["mtu"] = 1450 },
                },
            },
        };
        for (var i = 0; i < extraDomains; i++)
        {
            domains.Add(new JsonObject
            {
                ["name"] = $"bdx{i}",
                ["segments"] = new JsonArray
                {
                    new JsonObject { ["port"] = "trunk0", ["vlan"] = 100 + i },
                    new JsonObject { ["port"] = "und0", ["vni"] = 10000 + i, ["vteps"] = new JsonArray("192.0.2.2") },
                },
            });
        }

        var doc = new JsonObject
        {
            ["ports"] = new JsonArray
            {
                new JsonObject { ["name"] = "und0", ["kind"] = "vxlan", ["localAddress"] = "192.0.2.1" },
                new JsonObject { ["name"] = "acc10", ["kind"] = "access", ["interface"] = "acc10" },
                new JsonObject { ["name"] = "trunk0", ["kind"] = "trunk", ["interface"] = "trunk0" },
            },
            ["bridgeDomains"] = domains,
        };
        if (credentials)
        {
            doc["users"] = new JsonArray(new JsonObject { ["name"] = "admin", ["role"] = "admin", ["passwordHash"] = AdminHash });
            doc["apiTokens"] = new JsonArray(
                new JsonObject { ["name"] = "automation", ["role"] = "admin", ["tokenHash"] = Credentials.HashToken(AdminToken) },
                new JsonObject { ["name"] = "grafana", ["role"] = "read-only", ["tokenHash"] = Credentials.HashToken(ReaderToken) });
        }

        return doc;
    }
}
