# engine/eng_hash: SHA-256 (eng.hash.*) against the NIST examples.
eng_test_exe(test_eng_hash test_eng_hash.c)
eng_test_cases(test_eng_hash eng.hash cpu vectors splits file)
