package helmtest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

const (
	registryUserInfoEnv = "STREAMSCORE_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"
	registryTLSDir      = "/etc/streamscore-tls/schema-registry"
)

// checkSchemaRegistry: both Deployments get the registry's URL in their properties, its
// USER:PASSWORD from the auth Secret as a variable, and its TLS Secret mounted read-only
// beside Kafka's, with the schema.registry.ssl.*.location keys pointing into it.
func checkSchemaRegistry(t *testing.T, r *Rendered) {
	wantCounts(t, r, map[string]int{"Deployment": 2, "ConfigMap": 2})
	for _, name := range []string{full, shadowName} {
		d := deployment(t, r, name)
		wantSecretEnv(t, name, container(t, d), map[string][2]string{
			registryUserInfoEnv:                            {"schema-registry-streamscore", "user-info"},
			"STREAMSCORE_SCHEMA_REGISTRY_SSL_KEY_PASSWORD": {"schema-registry-client-tls", "key-password"},
		})
		wantSecretMounts(t, d, map[string]string{registryTLSDir: "schema-registry-client-tls", kafkaTLSDir: "kafka-client-tls"})
		p := props(t, r, name)
		wantProps(t, p, map[string]string{
			"input.framing":                            "confluent",
			"schema.registry.url":                      "https://schema-registry.registry.svc:8081",
			"schema.registry.request.timeout.ms":       "2000",
			"schema.registry.retries":                  "5",
			"schema.registry.miss.ttl.ms":              "30000",
			"output.subject.name.strategy":             "topic",
			"schema.registry.ssl.ca.location":          registryTLSDir + "/ca.crt",
			"schema.registry.ssl.certificate.location": registryTLSDir + "/tls.crt",
			"schema.registry.ssl.key.location":         registryTLSDir + "/tls.key",
			"kafka.ssl.ca.location":                    "/etc/streamscore-tls/kafka/ca.crt",
		})
		for _, k := range []string{"schema.registry.basic.auth.user.info", "schema.registry.ssl.key.password", "kafka.ssl.certificate.location"} {
			if _, ok := p[k]; ok {
				t.Errorf("%s: the properties hold %s", name, k)
			}
		}
	}
	// the shadow registers its results' schema under its own topic's subject
	if p, s := props(t, r, full), props(t, r, shadowName); s["shadow.topic"] == "" || s["shadow.topic"] == p["output.topic"] {
		t.Errorf("the shadow's shadow.topic %q must be its own (the primary writes %q)", s["shadow.topic"], p["output.topic"])
	}

	// The CA alone (no mutual TLS), at a mount path given with a trailing '/'.
	rr, err := Render(filepath.Join(valuesDir, "schema-registry.yaml"),
		"--set", "secrets.schemaRegistryTls.certKey=", "--set", "secrets.schemaRegistryTls.keyKey=",
		"--set", "secrets.schemaRegistryTls.caKey=registry-ca.pem", "--set", "secrets.schemaRegistryTls.mountPath=/etc/registry/")
	if err != nil {
		t.Fatal(err)
	}
	checkCommon(t, rr)
	for _, name := range []string{full, shadowName} {
		p := props(t, rr, name)
		wantProps(t, p, map[string]string{"schema.registry.ssl.ca.location": "/etc/registry/registry-ca.pem"})
		for _, k := range []string{"schema.registry.ssl.certificate.location", "schema.registry.ssl.key.location"} {
			if _, ok := p[k]; ok {
				t.Errorf("%s: CA only, yet %s = %s", name, k, p[k])
			}
		}
		if m := mount(container(t, deployment(t, rr, name)), "/etc/registry/"); m == nil || !m.ReadOnly {
			t.Errorf("%s: no read-only mount at /etc/registry/", name)
		}
	}

	// Neither registry Secret: no variable, no volume; a CA from elsewhere (extraVolumes)
	// may then be named in config.
	rr, err = Render(filepath.Join(valuesDir, "schema-registry.yaml"),
		"--set", "secrets.schemaRegistryAuth.name=", "--set", "secrets.schemaRegistryTls.secretName=",
		"--set", "config.schema\\.registry\\.ssl\\.ca\\.location=/etc/custom-ca/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	checkCommon(t, rr)
	for _, name := range []string{full, shadowName} {
		d := deployment(t, rr, name)
		c := container(t, d)
		if env(c, registryUserInfoEnv) != nil {
			t.Errorf("%s: no secrets.schemaRegistryAuth, yet %s is set", name, registryUserInfoEnv)
		}
		if mount(c, registryTLSDir) != nil || volume(d, "schema-registry-tls") != nil {
			t.Errorf("%s: no secrets.schemaRegistryTls, yet its volume is mounted", name)
		}
		p := props(t, rr, name)
		wantProps(t, p, map[string]string{"schema.registry.ssl.ca.location": "/etc/custom-ca/ca.pem"})
		if _, ok := p["schema.registry.ssl.certificate.location"]; ok {
			t.Errorf("%s: schema.registry.ssl.certificate.location set without secrets.schemaRegistryTls", name)
		}
	}
}

// escapeKey escapes the dots of a properties key for helm --set.
func escapeKey(k string) string { return strings.ReplaceAll(k, ".", "\\.") }

// A key holding a secret is refused in config and in shadow.config, with a message naming
// the key and where to set it instead.
func TestSecretKeysRefusedInConfig(t *testing.T) {
	for key, instead := range map[string]string{
		"kafka.sasl.password":                  "secrets.kafkaSaslPassword",
		"redis.password":                       "secrets.redisPassword",
		"redis.tls.key.password":               "secrets.redisTlsKeyPassword",
		"schema.registry.basic.auth.user.info": "secrets.schemaRegistryAuth",
		"schema.registry.ssl.key.password":     "extraEnv: STREAMSCORE_SCHEMA_REGISTRY_SSL_KEY_PASSWORD",
		"kafka.ssl.key.password":               "extraEnv: STREAMSCORE_KAFKA_SSL_KEY_PASSWORD",
		"kafka.ssl.key.pem":                    "extraEnv: STREAMSCORE_KAFKA_SSL_KEY_PEM",
		"kafka.producer.ssl.key.pem":           "extraEnv: STREAMSCORE_KAFKA_PRODUCER_SSL_KEY_PEM",
		"kafka.sasl.oauthbearer.client.secret": "extraEnv: STREAMSCORE_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET",
		"kafka.sasl.oauthbearer.config":        "extraEnv: STREAMSCORE_KAFKA_SASL_OAUTHBEARER_CONFIG",
		"kafka.ssl.keystore.password":          "extraEnv: STREAMSCORE_KAFKA_SSL_KEYSTORE_PASSWORD",
	} {
		for _, where := range []string{"config", "shadow.config"} {
			t.Run(where+" "+key, func(t *testing.T) {
				out, err := helm(renderArgs("", "--set", where+"."+escapeKey(key)+"=streamscore:hunter2")...)
				want := fmt.Sprintf("%s: key %s holds a secret: set it from a Secret (%s", where, key, instead)
				if err == nil {
					t.Fatalf("rendered with %s in %s:\n%s", key, where, out)
				}
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("failed, but without %q: %v", want, err)
				}
				// helm's own message (the error holds the command line too) leaves the value out
				if _, msg, _ := strings.Cut(err.Error(), "Error: "); strings.Contains(msg, "hunter2") {
					t.Errorf("the message repeats the secret: %s", msg)
				}
			})
		}
	}
}

// The TLS file locations are the chart's while their Secret is mounted (config may not set
// them), and config's own otherwise.
func TestTLSLocationsSetByTheChart(t *testing.T) {
	for tls, keys := range map[string][]string{
		"kafkaTls":          {"kafka.ssl.ca.location", "kafka.ssl.certificate.location", "kafka.ssl.key.location"},
		"schemaRegistryTls": {"schema.registry.ssl.ca.location", "schema.registry.ssl.certificate.location", "schema.registry.ssl.key.location"},
		"redisTls":          {"redis.tls.ca.file", "redis.tls.cert.file", "redis.tls.key.file"},
	} {
		for _, key := range keys {
			set := []string{"--set", "config." + escapeKey(key) + "=/etc/elsewhere/file.pem"}
			t.Run(key+" with secrets."+tls, func(t *testing.T) {
				withSecret := append([]string{"--set", "secrets." + tls + ".secretName=tls-files",
					"--set", "config.schema\\.registry\\.url=https://schema-registry:8081"}, set...)
				_, err := helm(renderArgs("", withSecret...)...)
				want := fmt.Sprintf("config: key %s is set by the chart from secrets.%s", key, tls)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("want a failure with %q, got %v", want, err)
				}
			})
			t.Run(key+" without secrets."+tls, func(t *testing.T) {
				r, err := Render("", set...)
				if err != nil {
					t.Fatal(err)
				}
				wantProps(t, props(t, r, full), map[string]string{key: "/etc/elsewhere/file.pem"})
			})
		}
	}
}
