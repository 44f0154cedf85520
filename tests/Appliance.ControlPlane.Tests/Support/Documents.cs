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

    /// <summary>
    /// <see cref="Lab"/> plus a firewall: zone "access" (acc10) and zone "trunk" (trunk0/vlan10), and
    /// <paramref name="rules"/> distinct TCP rules from access to trunk (distinct /24 sources, varied ports).
    /// </summary>
    public static JsonObject WithFirewall(JsonObject document, int rules, int seed = 0)
    {
        var list = new JsonArray();
        for (var i = 0; i < rules; i++)
        {
            var n = i + seed;
            list.Add(new JsonObject
            {
                ["id"] = i + 1,
                ["sources"] = new JsonArray($"10.{(n / 250) % 250}.{n % 250}.0/24"),
                ["protocol"] = "tcp",
                ["destinationPorts"] = new JsonArray((1024 + (n % 60000)).ToString(System.Globalization.CultureInfo.InvariantCulture)),
                ["action"] = i % 7 == 0 ? "drop" : "allow",
            });
        }

        document["firewall"] = new JsonObject
        {
            ["zones"] = new JsonArray(
                new JsonObject { ["name"] = "access", ["segments"] = new JsonArray("acc10") },
                new JsonObject { ["name"] = "trunk", ["segments"] = new JsonArray("trunk0/vlan10") }),
            ["policies"] = new JsonArray(new JsonObject { ["from"] = "access", ["to"] = "trunk", ["rules"] = list, ["defaultAction"] = "drop" }),
        };
        return document;
    }
}
