package helmtest

import (
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

const (
	redisTLSDir         = "/etc/streamscore-tls/redis"
	kafkaTLSDir         = "/etc/streamscore-tls/kafka"
	redisKeyPasswordEnv = "STREAMSCORE_REDIS_TLS_KEY_PASSWORD"
)

// wantSecretEnv: each variable is set from the Secret and key named, never as a value.
func wantSecretEnv(t *testing.T, name string, c corev1.Container, want map[string][2]string) {
	t.Helper()
	for envName, ref := range want {
		e := env(c, envName)
		if e == nil || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
			e.ValueFrom.SecretKeyRef.Name != ref[0] || e.ValueFrom.SecretKeyRef.Key != ref[1] {
			t.Errorf("%s: %s is not from Secret %s key %s: %+v", name, envName, ref[0], ref[1], e)
		}
	}
}

// wantSecretMounts: each folder is a read-only mount of the whole Secret named (mode 0440),
// each in a volume of its own.
func wantSecretMounts(t *testing.T, d *appsv1.Deployment, want map[string]string) {
	t.Helper()
	c := container(t, d)
	volumes := map[string]string{}
	for dir, secret := range want {
		m := mount(c, dir)
		if m == nil || !m.ReadOnly || m.SubPath != "" {
			t.Errorf("%s: want a read-only mount of Secret %s at %s, got %+v", d.Name, secret, dir, m)
			continue
		}
		v := volume(d, m.Name)
		if v == nil || v.Secret == nil || v.Secret.SecretName != secret ||
			v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o440 {
			t.Errorf("%s: volume at %s is not Secret %s with mode 0440: %+v", d.Name, dir, secret, v)
		}
		if other, dup := volumes[m.Name]; dup {
			t.Errorf("%s: %s and %s share volume %s", d.Name, other, dir, m.Name)
		}
		volumes[m.Name] = dir
	}
}

func wantNoProps(t *testing.T, name string, p map[string]string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if v, ok := p[k]; ok {
			t.Errorf("%s: the properties hold %s = %s", name, k, v)
		}
	}
}

// checkManagedServices: Kafka over SASL_SSL with a private CA and Redis over mutual TLS as
// an ACL user. Both Deployments get the passwords and the Redis key's passphrase as
// variables from their Secrets, both TLS Secrets mounted read-only in folders of their own,
// and the properties pointing into them; no secret is in the properties.
func checkManagedServices(t *testing.T, r *Rendered) {
	wantCounts(t, r, map[string]int{"Deployment": 2, "ConfigMap": 2})
	for _, name := range []string{full, shadowName} {
		d := deployment(t, r, name)
		wantSecretEnv(t, name, container(t, d), map[string][2]string{
			"STREAMSCORE_KAFKA_SASL_PASSWORD": {"kafka-streamscore", "password"},
			"STREAMSCORE_REDIS_PASSWORD":      {"redis-streamscore", "password"},
			redisKeyPasswordEnv:               {"redis-client-tls", "key-password"},
		})
		wantSecretMounts(t, d, map[string]string{redisTLSDir: "redis-client-tls", kafkaTLSDir: "kafka-ca"})
		p := props(t, r, name)
		wantProps(t, p, map[string]string{
			"kafka.bootstrap.servers": "kafka.example.net:9094",
			"kafka.security.protocol": "SASL_SSL",
			"kafka.sasl.mechanisms":   "SCRAM-SHA-512",
			"kafka.sasl.username":     "streamscore",
			"kafka.ssl.ca.location":   kafkaTLSDir + "/ca.crt",
			"redis.host":              "redis.example.net",
			"redis.port":              "6380",
			"redis.username":          "streamscore",
			"redis.tls":               "true",
			"redis.tls.server.name":   "redis.example.net",
			"redis.tls.ca.file":       redisTLSDir + "/ca.crt",
			"redis.tls.cert.file":     redisTLSDir + "/tls.crt",
			"redis.tls.key.file":      redisTLSDir + "/tls.key",
		})
		// Kafka's CA alone: no client certificate
		wantNoProps(t, name, p, "kafka.sasl.password", "redis.password", "redis.tls.key.password",
			"kafka.ssl.certificate.location", "kafka.ssl.key.location")
	}
}

// Redis TLS with the CA alone, at a mount path given with a trailing '/'; TLS files from
// elsewhere named in config (without secrets.redisTls); and none at all by default.
func TestRedisTLSVariants(t *testing.T) {
	f := filepath.Join(valuesDir, "managed-services.yaml")
	t.Run("CA only", func(t *testing.T) {
		r, err := Render(f, "--set", "secrets.redisTls.certKey=", "--set", "secrets.redisTls.keyKey=",
			"--set", "secrets.redisTlsKeyPassword.name=", "--set", "secrets.redisTls.caKey=redis-ca.pem",
			"--set", "secrets.redisTls.mountPath=/etc/redis-ca/")
		if err != nil {
			t.Fatal(err)
		}
		checkCommon(t, r)
		for _, name := range []string{full, shadowName} {
			d := deployment(t, r, name)
			wantSecretMounts(t, d, map[string]string{"/etc/redis-ca/": "redis-client-tls"})
			if env(container(t, d), redisKeyPasswordEnv) != nil {
				t.Errorf("%s: no secrets.redisTlsKeyPassword, yet %s is set", name, redisKeyPasswordEnv)
			}
			p := props(t, r, name)
			wantProps(t, p, map[string]string{"redis.tls": "true", "redis.tls.ca.file": "/etc/redis-ca/redis-ca.pem"})
			wantNoProps(t, name, p, "redis.tls.cert.file", "redis.tls.key.file")
		}
	})
	t.Run("files from elsewhere", func(t *testing.T) {
		r, err := Render(f, "--set", "secrets.redisTls.secretName=",
			"--set", "config.redis\\.tls=true",
			"--set", "config.redis\\.tls\\.ca\\.file=/etc/redis-client/ca.pem",
			"--set", "config.redis\\.tls\\.cert\\.file=/etc/redis-client/tls.crt",
			"--set", "config.redis\\.tls\\.key\\.file=/etc/redis-client/tls.key")
		if err != nil {
			t.Fatal(err)
		}
		checkCommon(t, r)
		for _, name := range []string{full, shadowName} {
			d := deployment(t, r, name)
			if mount(container(t, d), redisTLSDir) != nil || volume(d, "redis-tls") != nil {
				t.Errorf("%s: no secrets.redisTls, yet its volume is mounted", name)
			}
			// the key's passphrase still comes from its Secret
			wantSecretEnv(t, name, container(t, d), map[string][2]string{redisKeyPasswordEnv: {"redis-client-tls", "key-password"}})
			wantProps(t, props(t, r, name), map[string]string{
				"redis.tls":           "true",
				"redis.tls.ca.file":   "/etc/redis-client/ca.pem",
				"redis.tls.cert.file": "/etc/redis-client/tls.crt",
				"redis.tls.key.file":  "/etc/redis-client/tls.key",
			})
		}
	})
	t.Run("defaults", func(t *testing.T) {
		r, err := Render("")
		if err != nil {
			t.Fatal(err)
		}
		d := deployment(t, r, full)
		if volume(d, "redis-tls") != nil || env(container(t, d), redisKeyPasswordEnv) != nil {
			t.Error("no Redis TLS values, yet a Redis TLS volume or variable")
		}
		wantNoProps(t, full, props(t, r, full), "redis.tls", "redis.tls.ca.file", "redis.username")
	})
}

// A secret's `.file` key names a file holding it (a Secret mounted through extraVolumes): it
// holds no secret, so config and shadow.config accept it and the properties carry it. Beside
// a variable that gives the same secret (secrets.* or extraEnv), rendering fails: the worker
// would have two sources for one secret.
func TestSecretFileKeys(t *testing.T) {
	for _, key := range []string{"redis.password.file", "redis.tls.key.password.file",
		"schema.registry.basic.auth.user.info.file", "schema.registry.ssl.key.password.file"} {
		for _, where := range []string{"config", "shadow.config"} {
			t.Run(where+" "+key, func(t *testing.T) {
				r, err := Render("", "--set", "shadow.enabled=true",
					"--set", where+"."+escapeKey(key)+"=/run/secrets/streamscore/secret")
				if err != nil {
					t.Fatal(err)
				}
				wantProps(t, props(t, r, shadowName), map[string]string{key: "/run/secrets/streamscore/secret"})
				if _, ok := props(t, r, full)[key]; ok != (where == "config") {
					t.Errorf("the primary's properties hold %s: %v, want %v", key, ok, where == "config")
				}
			})
		}
	}
	for _, c := range []struct {
		key  string
		set  []string
		want string
	}{
		{"redis.password.file", []string{"secrets.redisPassword.name=redis"},
			"config: key redis.password.file and secrets.redisPassword both give redis.password: set one"},
		{"redis.tls.key.password.file", []string{"secrets.redisTlsKeyPassword.name=redis-tls", "secrets.redisTls.secretName=redis-tls",
			"secrets.redisTls.certKey=tls.crt", "secrets.redisTls.keyKey=tls.key"},
			"config: key redis.tls.key.password.file and secrets.redisTlsKeyPassword both give redis.tls.key.password: set one"},
		{"schema.registry.ssl.key.password.file", []string{"extraEnv[0].name=STREAMSCORE_SCHEMA_REGISTRY_SSL_KEY_PASSWORD",
			"extraEnv[0].valueFrom.secretKeyRef.name=registry-tls", "extraEnv[0].valueFrom.secretKeyRef.key=key-password"},
			"config: key schema.registry.ssl.key.password.file and extraEnv STREAMSCORE_SCHEMA_REGISTRY_SSL_KEY_PASSWORD both give schema.registry.ssl.key.password: set one"},
	} {
		t.Run(c.key+" beside a variable", func(t *testing.T) {
			args := []string{"--set", "config." + escapeKey(c.key) + "=/run/secrets/streamscore/secret"}
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			out, err := helm(renderArgs("", args...)...)
			if err == nil {
				t.Fatalf("rendered, but should fail with %q:\n%s", c.want, out)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("failed, but without %q: %v", c.want, err)
			}
		})
	}
}
